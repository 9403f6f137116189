"""Writes the golden vectors the Go server's tests check its own code against, from the Python side:

- yolo/testdata/resize_golden.json: OpenCV's bilinear resize, yoloforge's letterbox and the classify centre crop
  (PIL) of small random images, byte for byte;
- yolo/testdata/postprocess_golden.json: engines.processing.postprocess on random raw detect and classify
  outputs (boxes in original pixels, scores, classes, top-k);
- engine/testdata/plan_golden.json: engines.predictor.plan_batches for random per-batch call costs;
- yolo/testdata/decode_size_golden.json: the size the model's transform resizes an image to
  (engines.processing.resized_size) and the JPEG reduction decoded at for it (jpeg_reduction);
- jpegturbo/testdata/decode_golden.json: OpenCV's decoding of the checked-in jpegturbo/testdata/frame.jpg, whole
  and reduced 1/2, 1/4 and 1/8 in the DCT (cv2.IMREAD_REDUCED_*, the pixels Pillow's draft() gives too).

Re-run after changing engines/processing.py or engines/predictor.py; tests/test_golden.py fails while the
checked-in files differ from what this script writes, so the two sides cannot drift apart.

    python scripts/make_gateway_golden.py [--out DIR]   (DIR defaults to serving/gateway/internal)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from yoloforge.engines.base import ModelFacts
from yoloforge.engines.predictor import plan_batches
from yoloforge.engines.processing import (
    center_crop,
    jpeg_reduction,
    letterbox,
    letterbox_params,
    postprocess,
    resized_size,
)

INTERNAL = Path(__file__).resolve().parents[1] / "serving/gateway/internal"
FILES = ("yolo/testdata/resize_golden.json", "yolo/testdata/postprocess_golden.json",
         "engine/testdata/plan_golden.json", "jpegturbo/testdata/decode_golden.json",
         "yolo/testdata/decode_size_golden.json")


def resize_cases() -> list[dict]:
    rng = np.random.default_rng(0)
    cases = []
    for h, w in [(5, 7), (13, 9), (30, 17)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        entry = {"width": w, "height": h, "pixels": img.flatten().tolist(), "resized": [], "letterbox": [],
                 "crop": []}
        for nw, nh in [(4, 3), (11, 9), (16, 20), (w * 2 + 1, h * 3)]:
            resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
            entry["resized"].append({"width": nw, "height": nh, "pixels": resized.flatten().tolist()})
        for size in (16, 32):
            out, lb = letterbox(img, size)
            entry["letterbox"].append({"imgsz": size, "pixels": out.flatten().tolist(), "pad_x": lb.pad_x,
                                       "pad_y": lb.pad_y, "new_w": lb.new_w, "new_h": lb.new_h})
            entry["crop"].append({"imgsz": size, "pixels": center_crop(img, size).flatten().tolist()})
        cases.append(entry)
    return cases


def postprocess_cases() -> list[dict]:
    """Raw outputs with boxes clustered so NMS has work to do, at three original image shapes."""
    rng = np.random.default_rng(1)
    names = ["circle", "square", "triangle"]
    imgsz, anchors = 64, 96
    cases = []
    for height, width in [(64, 64), (50, 80), (90, 40)]:
        centres = rng.uniform(8, imgsz - 8, (6, 2))
        which = rng.integers(0, len(centres), anchors)
        xy = centres[which] + rng.normal(0, 1.5, (anchors, 2))
        wh = rng.uniform(6, 20, (anchors, 2))
        scores = rng.uniform(0, 0.4, (len(names), anchors)) ** 2
        scores[rng.integers(0, len(names), anchors), np.arange(anchors)] += rng.uniform(0, 0.8, anchors)
        raw = np.concatenate([xy.T, wh.T, scores]).astype(np.float32)  # (4 + nc, anchors)
        lb = letterbox_params(height, width, imgsz)
        facts = ModelFacts(task="detect", names=names, imgsz=imgsz)
        for conf, iou, max_det in [(0.25, 0.7, 300), (0.1, 0.5, 5)]:
            pred = postprocess([raw[None]], [lb], facts, imgsz, conf=conf, iou=iou, max_det=max_det)[0]
            cases.append({"task": "detect", "names": names, "imgsz": imgsz, "height": height, "width": width,
                          "shape": list(raw.shape), "data": [float(v) for v in raw.flatten()],
                          "conf": conf, "iou": iou, "max_det": max_det,
                          "boxes": pred.boxes.astype(float).tolist(), "scores": pred.scores.astype(float).tolist(),
                          "classes": pred.classes.astype(int).tolist()})
    probs = rng.dirichlet(np.ones(7)).astype(np.float32)
    lb = letterbox_params(32, 32, 32)
    facts = ModelFacts(task="classify", names=[f"c{k}" for k in range(7)], imgsz=32)
    pred = postprocess([probs[None]], [lb], facts, 32, top_k=5)[0]
    cases.append({"task": "classify", "names": facts.names, "imgsz": 32, "height": 32, "width": 32,
                  "shape": [7], "data": [float(v) for v in probs], "top_k": 5,
                  "top": pred.top.astype(int).tolist(), "probs": pred.probs.astype(float).tolist()})
    return cases


def plan_cases() -> list[dict]:
    """Call costs in whole microseconds (sums are exact on both sides), CPU-like and GPU-like."""
    rng = np.random.default_rng(2)
    cases = []
    for _ in range(12):
        sizes = sorted({1, *rng.choice([2, 4, 8, 16], rng.integers(1, 4), replace=False).tolist()})
        per_image = rng.uniform(1000, 20000)
        fixed = rng.uniform(0, 40000)
        cost_us = {s: int(fixed + per_image * s * rng.uniform(0.2, 1.1)) for s in sizes}
        for n in (1, 3, 7, 8, 13, 32):
            plan = plan_batches(n, {s: c / 1000 for s, c in cost_us.items()})
            cases.append({"cost_us": {str(s): c for s, c in cost_us.items()}, "n": n, "plan": plan,
                          "total_us": sum(cost_us[s] for s in plan)})
    return cases


def decode_cases() -> list[dict]:
    data = np.frombuffer((INTERNAL / "jpegturbo/testdata/frame.jpg").read_bytes(), np.uint8)
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}
    cases = []
    for denom, flag in flags.items():
        rgb = cv2.imdecode(data, flag)[..., ::-1]
        cases.append({"denom": denom, "width": rgb.shape[1], "height": rgb.shape[0],
                      "pixels": rgb.flatten().tolist()})
    return cases


def decode_size_cases() -> list[dict]:
    cases = []
    for width, height in [(1280, 720), (1920, 1080), (1279, 719), (640, 480), (4000, 3000), (97, 61), (321, 2000),
                          (2560, 1440), (1281, 721), (300, 300)]:
        for imgsz in (64, 160, 320, 640):
            for task in ("detect", "classify"):
                need_w, need_h = resized_size(width, height, imgsz, task)
                cases.append({"width": width, "height": height, "imgsz": imgsz, "task": task, "need_w": need_w,
                              "need_h": need_h, "denom": jpeg_reduction(width, height, need_w, need_h)})
    return cases


def write(out: Path) -> list[Path]:
    written = []
    for name, cases in zip(FILES, (resize_cases(), postprocess_cases(), plan_cases(), decode_cases(),
                                              decode_size_cases()), strict=True):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cases, separators=(",", ":")))
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=INTERNAL)
    for path in write(parser.parse_args().out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
