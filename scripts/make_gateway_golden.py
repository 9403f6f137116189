"""Writes serving/gateway/internal/yolo/testdata/resize_golden.json: what OpenCV's bilinear resize, yoloforge's
letterbox and the classify centre crop (PIL) give for small random images, so the Go tests check the Go
pre-processing against the Python side byte for byte. Re-run after changing engines/processing.py."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from yoloforge.engines.processing import center_crop, letterbox

OUT = Path(__file__).resolve().parents[1] / "serving/gateway/internal/yolo/testdata/resize_golden.json"


def main() -> None:
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
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(cases, separators=(",", ":")))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
