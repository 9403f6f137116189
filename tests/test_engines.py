"""engines/: shared pre/post-processing against Ultralytics, parity of every CPU backend with Ultralytics'
own predict, accuracy against its validator, the selection rules, and the stage on real Ray actors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

os.environ.setdefault("YOLO_VERBOSE", "False")

from yoloforge.engines.accuracy import evaluate, load_split
from yoloforge.engines.base import EngineConfig, ModelFacts
from yoloforge.engines.export import model_file
from yoloforge.engines.predictor import Predictor
from yoloforge.engines.processing import center_crop, letterbox, mask_polygons, nms, preprocess
from yoloforge.engines.registry import load_engine
from yoloforge.engines.selection import EngineTargets, select
from yoloforge.serving.bundle import server_cannot_run

from tests.parity import Boxes, match_detections

IMGSZ = 128


def _images(data: Path, task: str) -> list[np.ndarray]:
    samples = load_split(data, task, "val", limit=8)
    images = [s.image for s in samples]
    images.append(np.ascontiguousarray(images[0][:, : IMGSZ * 3 // 4]))  # not square: padding on two sides
    images.append(np.ascontiguousarray(np.repeat(images[1], 2, axis=0)))  # tall, and larger than imgsz
    return images


def _engine(config: EngineConfig, weights: Path, tmp: Path, calibration: np.ndarray | None = None) -> Predictor:
    path = model_file(config, weights, tmp / "models", calibration)
    engine = load_engine(config, path, weights, tmp / "models", calibration)
    return Predictor(engine, ModelFacts.from_checkpoint(weights, imgsz=IMGSZ))


# --- shared processing ---------------------------------------------------------------------------------------


def test_letterbox_matches_ultralytics_for_any_aspect_ratio():
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    for h, w in [(100, 100), (90, 160), (333, 127), (17, 640), (640, 480)]:
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        ours, _ = letterbox(image, 320)
        theirs = LetterBox((320, 320), auto=False)(image=image)
        assert ours.shape == theirs.shape == (320, 320, 3)
        assert np.array_equal(ours, theirs), (h, w)


def _camera_jpeg(width: int = 1280, height: int = 720) -> bytes:
    import cv2

    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (7, 7), 2)
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def test_a_masks_polygon_outlines_its_largest_region_not_its_raggedest():
    # a weak model's mask: a ragged fragment (13 border points, area 12.5) above its main region (4 points, 121)
    mask = np.zeros((24, 24), bool)
    for i in range(10):
        mask[1, 2 + i] = mask[2 + i % 2, 2 + i] = True
    mask[10:22, 6:18] = True
    assert mask_polygons(mask[None]) == [[[6.0, 10.0], [6.0, 21.0], [17.0, 21.0], [17.0, 10.0]]]


def test_a_jpeg_the_model_halves_is_decoded_at_half_to_opencvs_pixels_and_placed_as_the_original():
    import cv2
    from yoloforge.engines.processing import decode_for_model, preprocess

    data = _camera_jpeg()
    image, size = decode_for_model(data, 640, "detect")
    assert size == (720, 1280) and image.shape == (360, 640, 3)  # 1/2 in the DCT: the letterbox's own size
    assert np.array_equal(image, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)[..., ::-1])
    _, (lb,) = preprocess([image], 640, "detect", [size])
    assert (lb.width, lb.height, lb.gain_x, lb.new_w, lb.new_h) == (1280, 720, 0.5, 640, 360)


def test_a_jpeg_the_model_shrinks_by_more_than_half_is_decoded_whole():
    import cv2
    from yoloforge.engines.processing import decode_for_model

    data = _camera_jpeg()
    image, size = decode_for_model(data, 320, "detect")  # 1/4 would move Ultralytics' boxes: whole, as it decodes
    assert size == (720, 1280) and np.array_equal(image, cv2.imdecode(np.frombuffer(data, np.uint8),
                                                                      cv2.IMREAD_COLOR)[..., ::-1])


def test_png_and_small_jpegs_are_decoded_whole():
    import cv2
    from yoloforge.engines.processing import decode_for_model

    image = np.random.default_rng(4).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    png = cv2.imencode(".png", image[..., ::-1])[1].tobytes()
    assert np.array_equal(decode_for_model(png, 64, "detect")[0], image)  # PNG: never reduced
    small, size = decode_for_model(_camera_jpeg(200, 100), 160, "detect")
    assert small.shape == (100, 200, 3) and size == (100, 200)


def test_a_truncated_or_foreign_image_is_undecodable():
    from yoloforge.engines.processing import UndecodableImage, decode_for_model

    data = _camera_jpeg()
    for bad in (data[: len(data) // 2], b"GIF89a" + data[6:], b""):
        with pytest.raises(UndecodableImage):
            decode_for_model(bad, 320, "detect")


def test_center_crop_matches_ultralytics_classify_transform():
    from PIL import Image
    from ultralytics.data.augment import classify_transforms

    rng = np.random.default_rng(1)
    for h, w in [(64, 64), (90, 160), (333, 127)]:
        image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        ours = center_crop(image, 96).transpose(2, 0, 1).astype(np.float32) / 255
        theirs = classify_transforms(96)(Image.fromarray(image)).numpy()
        assert np.abs(ours - theirs).max() < 1e-6


def test_nms_keeps_what_torchvision_keeps():
    rng = np.random.default_rng(2)
    for _ in range(20):
        xy = rng.uniform(0, 200, (300, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (300, 2))], axis=1).astype(np.float32)
        scores = rng.random(300).astype(np.float32)
        ours = nms(boxes, scores, 0.5, max_keep=300)
        theirs = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5).numpy()
        assert np.array_equal(ours, theirs)


def test_masks_are_returned_at_the_original_size_without_the_padding():
    from yoloforge.engines.processing import letterbox_params, unletterbox_masks

    lb = letterbox_params(200, 100, 128)  # tall: grey bars left and right
    masks = np.zeros((1, 128, 128), bool)
    masks[0, :, lb.pad_x: lb.pad_x + lb.new_w] = True  # exactly the image's content
    out = unletterbox_masks(masks, lb)
    assert out.shape == (1, 200, 100) and out.all()


def test_preprocess_gives_one_float_batch_in_unit_range():
    images = [np.full((50, 80, 3), 255, np.uint8), np.zeros((80, 50, 3), np.uint8)]
    batch, placed = preprocess(images, 64, "detect")
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == np.float32
    assert batch.max() <= 1.0 and batch.min() >= 0.0
    assert (placed[0].width, placed[0].height) == (80, 50)


# --- parity with Ultralytics' predict ------------------------------------------------------------------------


def _ultralytics_predict(weights: Path, images: list[np.ndarray], **kw):  # type: ignore[no-untyped-def]
    from ultralytics import YOLO

    # Ultralytics takes numpy images as BGR; rect=False gives the square input every exported engine has
    return YOLO(str(weights)).predict([im[..., ::-1] for im in images], imgsz=IMGSZ, rect=False, verbose=False,
                                      device="cpu", **kw)


def _assert_same_detections(ours, theirs, conf: float) -> list[list[tuple[int, int]]]:  # type: ignore[no-untyped-def]
    """Per image, the twins (ours, theirs) of every box clearly inside the thresholds (tests/parity.py)."""
    return [match_detections(Boxes.of(p.boxes, p.classes, p.scores),
                             Boxes.of(r.boxes.xyxy.numpy(), r.boxes.cls.numpy(), r.boxes.conf.numpy()), conf=conf)
            for p, r in zip(ours, theirs, strict=True)]


# threads change the order of float sums, so the last bits: parity must hold on one thread and on every core
@pytest.mark.parametrize(("backend", "threads"), [("pytorch", None), ("onnxruntime", None), ("openvino", None),
                                                  ("onnxruntime", 1), ("openvino", 1)])
def test_detections_match_ultralytics_predict(backend, threads, detector, tmp_path):
    weights, data = detector
    images = _images(data, "detect")
    predictor = _engine(EngineConfig(backend, "fp32", batch=4, imgsz=IMGSZ, threads=threads), weights, tmp_path)
    ours = predictor.predict(images, conf=0.01, iou=0.7)
    twins = _assert_same_detections(ours, _ultralytics_predict(weights, images, conf=0.01, iou=0.7), conf=0.01)
    assert sum(map(len, twins)) >= 10  # the comparison covered real detections


def test_segment_boxes_and_masks_match_ultralytics(segmenter, tmp_path):
    weights, data = segmenter
    # square images: masks at the model's input size are then comparable pixel for pixel (letterboxing of
    # non-square images is covered by the detection parity tests)
    images = _images(data, "segment")[:8]
    ours = _engine(EngineConfig("onnxruntime", "fp32", 1, IMGSZ), weights, tmp_path).predict(images, conf=0.05)
    theirs = _ultralytics_predict(weights, images, conf=0.05)
    twins = _assert_same_detections(ours, theirs, conf=0.05)
    assert sum(map(len, twins)) >= 5
    compared = 0
    for p, r, pairs in zip(ours, theirs, twins, strict=True):
        masks = r.masks.data.numpy() > 0.5 if r.masks is not None else None
        for i, j in pairs:
            inter, union = (masks[j] & p.masks[i]).sum(), (masks[j] | p.masks[i]).sum()
            assert inter / max(union, 1) >= 0.8
            compared += 1
    assert compared >= 5


def test_segment_answer_carries_a_polygon_per_detection(segmenter, tmp_path):
    weights, data = segmenter
    predictor = _engine(EngineConfig("onnxruntime", "fp32", 1, IMGSZ), weights, tmp_path)
    prediction = predictor.predict(_images(data, "segment")[:3], conf=0.05)[0]
    from yoloforge.serving.answers import answer_body

    answer = answer_body(prediction, predictor.facts.names, "segment")
    assert answer["detections"] and all(len(d["polygon"]) >= 3 for d in answer["detections"])


@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime", "openvino"])
def test_classification_top_k_matches_ultralytics(backend, classifier, tmp_path):
    weights, data = classifier
    images = _images(data, "classify")
    ours = _engine(EngineConfig(backend, "fp32", 2, IMGSZ), weights, tmp_path).predict(images, top_k=3)
    for p, r in zip(ours, _ultralytics_predict(weights, images), strict=True):
        theirs = r.probs.data.numpy()
        assert abs(p.probs[0] - float(r.probs.top1conf)) < 1e-3
        # the same top class, unless Ultralytics' own runner-up is within the score tolerance of it
        assert theirs[p.top[0]] >= theirs.max() - 1e-3, (p.top, r.probs.top5)


# --- accuracy -------------------------------------------------------------------------------------------------


def test_pytorch_fp32_accuracy_agrees_with_ultralytics_val(detector, tmp_path):
    from ultralytics import YOLO

    weights, data = detector
    ours = evaluate(_engine(EngineConfig("pytorch", "fp32", 8, IMGSZ), weights, tmp_path), load_split(data, "detect"))
    theirs = YOLO(str(weights)).val(data=str(data / "data.yaml"), imgsz=IMGSZ, batch=8, rect=False, plots=False,
                                    workers=0, device="cpu", verbose=False)
    assert ours["mAP50-95"] > 0.02
    assert ours["mAP50-95"] == pytest.approx(theirs.box.map, abs=0.01)
    assert ours["mAP50"] == pytest.approx(theirs.box.map50, abs=0.02)


def test_int8_model_is_calibrated_on_training_images_and_stays_close(detector, tmp_path):
    weights, data = detector
    calibration = preprocess([s.image for s in load_split(data, "detect", "train", 16)], IMGSZ, "detect")[0]
    samples = load_split(data, "detect")
    fp32 = evaluate(_engine(EngineConfig("onnxruntime", "fp32", 1, IMGSZ), weights, tmp_path), samples)
    int8 = evaluate(_engine(EngineConfig("openvino", "int8", 1, IMGSZ), weights, tmp_path, calibration), samples)
    assert (tmp_path / "models" / "best-128-b1-int8.onnx").is_file()
    assert abs(fp32["mAP50-95"] - int8["mAP50-95"]) < 0.05


@pytest.mark.slow  # the fixture is asked for by name, which the slow marking in conftest.py does not see
@pytest.mark.parametrize("model", ["segmenter", "classifier"])
def test_segment_and_classify_models_get_their_own_int8_sensitivity_run(model, request, tmp_path):
    from yoloforge.engines.export import export_onnx, quantize_int8
    from yoloforge.engines.int8_choice import agreement_labels, calibration_images
    from yoloforge.engines.quantize import float_nodes, module_names, search_recipe

    weights, data = request.getfixturevalue(model)
    facts = ModelFacts.from_checkpoint(weights, imgsz=IMGSZ)
    fp32 = export_onnx(weights, IMGSZ, 1, tmp_path)
    modules = module_names(fp32)
    assert len(modules) > 5 and modules[0] == "model.0"
    pool = calibration_images(data, facts.task, IMGSZ, 16)
    reference_engine = load_engine(EngineConfig("onnxruntime", "fp32", 1, IMGSZ), fp32, weights, tmp_path, None)
    agreed = agreement_labels(Predictor(reference_engine, facts), [s.image for s in load_split(data, facts.task,
                                                                                              "val", 8)])
    metric = "top1" if facts.task == "classify" else "mAP50-95"

    def agreement(recipe, within_s):  # type: ignore[no-untyped-def]
        int8 = quantize_int8(fp32, pool, 1, recipe, within_s)
        engine = load_engine(EngineConfig("onnxruntime", "int8", 1, IMGSZ), int8, weights, tmp_path, None)
        try:
            return evaluate(Predictor(engine, facts), agreed)[metric]
        finally:
            engine.close()

    reference = evaluate(Predictor(reference_engine, facts), agreed)[metric]
    # a goal no recipe meets, so every step runs: methods, then each of the first two modules alone in float
    result = search_recipe(agreement, modules[:3], reference, goal=-1.0, budget_s=1e9, images=(len(pool),))
    assert set(result.sensitivity) == {"model.0", "model.1"}
    assert all(0.0 <= t.score <= 1.0 for t in result.tried)
    assert result.chosen_score >= 0.5 * reference  # int8 still answers as fp32 does on most images
    head = modules[-1]
    kept = float_nodes(fp32, result.chosen)
    assert any(n.startswith(f"/{head}/") for n in kept)  # the head's decoding stays in float for every task


# --- selection rules ------------------------------------------------------------------------------------------


def _row(backend: str, precision: str, throughput: float, acc: float, *, imgsz: int = 128, batch: int = 1,
         rss: float = 500, status: str = "ok", noise: float = 0.0) -> dict:
    return {"backend": backend, "precision": precision, "batch": batch, "imgsz": imgsz, "threads": None,
            "device": "cpu", "options": "{}", "key": f"{backend}-{precision}-{batch}-{imgsz}", "status": status,
            "throughput": throughput, "throughput_noise": noise, "p50_ms": 1000 / throughput,
            "p99_ms": 1200 / throughput, "peak_rss_mb": rss, "mAP50-95": acc}


def test_selection_picks_the_fastest_config_within_the_accuracy_limit():
    rows = [_row("pytorch", "fp32", 10, 0.50), _row("onnxruntime", "fp32", 25, 0.50),
            _row("onnxruntime", "int8", 40, 0.47), _row("openvino", "int8", 32, 0.495)]
    chosen = select(rows, EngineTargets(fps=20, max_accuracy_drop=0.01), 128, cannot_run=server_cannot_run)
    assert chosen["met"] and chosen["chosen"]["key"] == "openvino-int8-1-128"
    assert chosen["speedup_vs_baseline"] == pytest.approx(3.2)


def test_a_tie_in_speed_within_the_timing_noise_goes_to_accuracy_then_memory():
    rows = [_row("pytorch", "fp32", 10, 0.50),
            _row("onnxruntime", "int8", 419.2, 0.31, noise=3.0),  # the fastest by 0.1%, but less accurate
            _row("onnxruntime", "fp32", 418.6, 0.50, noise=3.0, rss=600),
            _row("openvino", "fp32", 417.0, 0.50, noise=2.0, rss=400),
            _row("openvino", "fp16", 380.0, 0.55, noise=2.0)]  # clearly slower: not a tie
    selection = select(rows, EngineTargets(max_accuracy_drop=0.5), 128, cannot_run=server_cannot_run)
    assert selection["chosen"]["key"] == "openvino-fp32-1-128"
    assert any("as fast within the timing noise" in line for line in selection["reasoning"])


def test_without_noise_the_fastest_is_chosen():
    rows = [_row("pytorch", "fp32", 10, 0.50), _row("onnxruntime", "int8", 419.2, 0.31),
            _row("onnxruntime", "fp32", 418.6, 0.50)]
    chosen = select(rows, EngineTargets(max_accuracy_drop=0.5), 128, cannot_run=server_cannot_run)["chosen"]
    assert chosen["key"] == "onnxruntime-int8-1-128"


def test_timing_noise_comes_from_blocks_of_repeated_calls():
    from yoloforge.engines.harness import throughput_noise

    assert throughput_noise([0.01] * 50, 1) == 0.0  # identical calls: no noise
    assert throughput_noise([0.01, 0.02] * 25, 1) < throughput_noise([0.01] * 25 + [0.02] * 25, 1)  # a slow stretch
    assert throughput_noise([0.01] * 5, 1) == 0.0  # too few calls to tell


def test_cpu_time_per_image_counts_work_not_waiting_and_every_copy():
    import time

    from yoloforge.engines.harness import time_batches, time_lanes

    def spin() -> None:  # 4 ms of its thread's CPU a call, however busy the machine is
        until = time.thread_time() + 0.004
        while time.thread_time() < until:
            pass

    waiting = time_batches(lambda: time.sleep(0.004), 2, min_runs=10, min_time_s=0.0)
    working = time_batches(spin, 2, min_runs=10, min_time_s=0.0)
    lanes = time_lanes([spin, spin], 2, min_runs=10, min_time_s=0.0)
    assert waiting.cpu_ms_per_image < 1.0  # a sleeping call costs the machine (almost) nothing
    assert working.cpu_ms_per_image >= 2.0  # 4 ms a call of 2 images
    assert lanes.cpu_ms_per_image >= 2.0  # both copies' CPU, over both copies' images


def test_selection_respects_memory_and_latency_limits():
    rows = [_row("pytorch", "fp32", 10, 0.5), _row("onnxruntime", "fp32", 50, 0.5, batch=8, rss=3000),
            _row("onnxruntime", "fp32", 30, 0.5, rss=800)]
    chosen = select(rows, EngineTargets(max_memory_mb=1000, p99_latency_ms=100), 128,
                    cannot_run=server_cannot_run)["chosen"]
    assert chosen["throughput"] == 30


def test_nothing_feasible_names_the_closest_and_what_would_help():
    rows = [_row("pytorch", "fp32", 10, 0.5), _row("onnxruntime", "fp32", 25, 0.5)]
    result = select(rows, EngineTargets(fps=100), 128, cannot_run=server_cannot_run)
    assert not result["met"] and result["chosen"] is None
    assert result["closest"]["backend"] == "onnxruntime"
    assert any("4.0x short of 100" in a for a in result["advice"])


def test_on_a_cpu_the_layout_of_engine_copies_is_a_dimension_of_the_space(monkeypatch):
    from yoloforge.engines import registry

    monkeypatch.setattr(registry, "cpu_count", lambda: 4)
    configs = registry.config_space(["pytorch", "onnxruntime", "openvino"], ["fp32"], [1], [128], [None], "cpu")
    layouts = {(c.backend, c.threads, c.lanes) for c in configs}
    assert layouts == {("pytorch", None, None), ("onnxruntime", None, 1), ("onnxruntime", 1, 4),
                       ("openvino", None, 1), ("openvino", 1, 4)}
    assert len({c.key for c in configs}) == len(configs)
    explicit = registry.config_space(["onnxruntime"], ["fp32"], [1], [128], [2], "cpu")  # the job's threads win
    assert [(c.threads, c.lanes) for c in explicit] == [(2, None)]
    gpu = registry.config_space(["onnxruntime"], ["fp32"], [1], [128], [None], "cuda:0")
    assert all(c.lanes is None for c in gpu)


def test_engine_copies_side_by_side_add_their_throughputs():
    import time

    from yoloforge.engines.harness import time_lanes

    calls = [0, 0]

    def copy(k: int):  # type: ignore[no-untyped-def]
        def run() -> None:
            calls[k] += 1
            time.sleep(0.005)
        return run

    one = time_lanes([copy(0)], 1, min_time_s=0.2)
    calls[0] = 0
    two = time_lanes([copy(0), copy(1)], 1, min_time_s=0.2)
    assert min(calls) >= 10 and two.runs == sum(calls) - 2 * 3  # every copy ran (warm-up calls are not timed)
    assert two.throughput > 1.2 * one.throughput  # sleeping copies do not compete for a core: about 2x


def test_a_faster_config_the_bundle_cannot_run_is_passed_over_and_the_reasoning_says_why():
    rows = [_row("pytorch", "fp32", 90, 0.50, batch=8), _row("onnxruntime", "fp32", 40, 0.50),
            _row("openvino", "fp32", 50, 0.50)]
    selection = select(rows, EngineTargets(fps=30), 128, cannot_run=server_cannot_run)
    assert selection["chosen"]["backend"] == "openvino" and selection["deployable"]
    assert any("does not run PyTorch" in line and "what the bundle delivers" in line for line in selection["reasoning"])


def test_a_config_the_bundle_cannot_run_is_chosen_when_nothing_else_meets_the_targets():
    rows = [_row("pytorch", "fp32", 90, 0.50, batch=8), _row("onnxruntime", "fp32", 40, 0.50)]
    selection = select(rows, EngineTargets(fps=60), 128, cannot_run=server_cannot_run)
    assert selection["chosen"]["backend"] == "pytorch" and not selection["deployable"]


def test_failed_and_unavailable_configs_are_never_chosen():
    rows = [_row("pytorch", "fp32", 10, 0.5), _row("tensorrt", "fp16", 900, 0.5, status="unavailable"),
            _row("openvino", "fp32", 800, 0.5, status="failed")]
    assert select(rows, EngineTargets(), 128, cannot_run=server_cannot_run)["chosen"]["backend"] == "pytorch"


def _delivered(rps: float) -> dict:
    return {"rps": rps, "p50_ms": 20.0, "p99_ms": 40.0, "clients": 16, "seconds": 5.0, "errors": 0,
            "stages_ms": {"decode": 2.0, "preprocess": 1.0, "inference": 10.0, "postprocess": 0.5}}


def _ranked_rows() -> list[dict]:
    return [_row("pytorch", "fp32", 10, 0.50), _row("onnxruntime", "fp32", 75, 0.50),
            _row("openvino", "fp32", 64, 0.50), _row("onnxruntime", "int8", 40, 0.50)]


def test_the_bundle_candidates_are_the_engines_choice_then_deployable_configs_close_in_speed():
    from yoloforge.engines.delivery_ranking import bundle_candidates

    rows = [*_ranked_rows(), _row("pytorch", "fp16", 200, 0.50), _row("openvino", "int8", 70, 0.30)]
    selection = select(rows, EngineTargets(fps=30, max_accuracy_drop=0.01), 128, cannot_run=server_cannot_run)
    keys = [r["key"] for r in bundle_candidates(rows, selection, cannot_run=server_cannot_run)]
    # PyTorch does not run in Go; the int8 loses accuracy; 40 img/s is under 0.7 of the fastest deployable one
    assert keys == ["onnxruntime-fp32-1-128", "openvino-fp32-1-128"]


def test_a_config_that_delivers_more_through_the_bundle_is_chosen_and_the_promise_is_its_rps():
    from yoloforge.engines.delivery_ranking import rank_by_delivery
    from yoloforge.engines.selection import promised

    rows = _ranked_rows()
    selection = select(rows, EngineTargets(fps=30), 128, cannot_run=server_cannot_run)
    ranked = rank_by_delivery(selection, [(rows[1], _delivered(50.0)), (rows[2], _delivered(55.7))], 16, 5.0)
    assert ranked["chosen"]["key"] == "openvino-fp32-1-128"
    assert promised(ranked) == (55.7, "RPS through the bundle")
    assert ranked["speedup_vs_baseline"] == pytest.approx(6.4)  # the new choice's engine img/s over PyTorch's
    assert any("Ranked by what the bundle delivers" in line and "55.7 RPS" in line for line in ranked["reasoning"])
    assert [m["key"] for m in ranked["bundle_ranking"]["measured"]] == ["onnxruntime-fp32-1-128", "openvino-fp32-1-128"]
    assert selection["chosen"]["key"] == "onnxruntime-fp32-1-128"  # the selection given is not changed


def test_the_engines_choice_stays_when_another_config_delivers_no_more_than_the_noise():
    from yoloforge.engines.delivery_ranking import BUNDLE_MARGIN, rank_by_delivery

    rows = _ranked_rows()
    selection = select(rows, EngineTargets(), 128, cannot_run=server_cannot_run)
    close = 50.0 * (1 + BUNDLE_MARGIN) * 0.99
    ranked = rank_by_delivery(selection, [(rows[1], _delivered(50.0)), (rows[2], _delivered(close))], 16, 5.0)
    assert ranked["chosen"]["key"] == "onnxruntime-fp32-1-128" and ranked["promised_rps"] == 50.0


def test_a_config_whose_bundle_does_not_run_is_never_chosen_and_the_reasoning_says_why():
    from yoloforge.engines.delivery_ranking import rank_by_delivery

    rows = _ranked_rows()
    selection = select(rows, EngineTargets(), 128, cannot_run=server_cannot_run)
    ranked = rank_by_delivery(selection, [(rows[1], "the server exited with status 1"), (rows[2], _delivered(30.0))],
                              16, 5.0)
    assert ranked["chosen"]["key"] == "openvino-fp32-1-128" and ranked["promised_rps"] == 30.0
    assert any("did not run here: the server exited" in line for line in ranked["reasoning"])


def test_when_no_bundle_runs_the_engine_ranks_and_promises_img_s():
    from yoloforge.engines.delivery_ranking import rank_by_delivery
    from yoloforge.engines.selection import promised

    rows = _ranked_rows()
    selection = select(rows, EngineTargets(), 128, cannot_run=server_cannot_run)
    ranked = rank_by_delivery(selection, [(rows[1], "no Go")], 16, 5.0)
    assert ranked["chosen"]["key"] == "onnxruntime-fp32-1-128"
    assert promised(ranked) == (75.0, "img/s for the engine alone")


def test_a_bundle_below_the_fps_target_is_advised_on_with_the_servers_own_cost_per_image():
    from yoloforge.engines.delivery_ranking import rank_by_delivery

    rows = _ranked_rows()
    selection = select(rows, EngineTargets(fps=60), 128, cannot_run=server_cannot_run)
    ranked = rank_by_delivery(selection, [(rows[1], _delivered(50.0))], 16, 5.0)
    assert any("50.0 RPS, below the 60 FPS target" in a and "3.5 ms per image" in a for a in ranked["advice"])


def test_without_go_the_engine_alone_ranks_and_the_reasoning_says_how_the_export_will_need_it(tmp_path, monkeypatch):
    import shutil

    from yoloforge.core.rundir import RunDir
    from yoloforge.ray_app.benchmark.through_bundle import rank_by_bundle
    from yoloforge.ray_app.spec import parse_job

    spec = parse_job({"name": "nogo", "model": "yolo11n.yaml", "data": {"path": str(tmp_path)},
                      "runs_dir": str(tmp_path)})
    rows = _ranked_rows()
    selection = {**select(rows, EngineTargets(), 128, cannot_run=server_cannot_run), "device": "cpu"}
    monkeypatch.setattr(shutil, "which", lambda name: None)
    ranked = rank_by_bundle(spec, RunDir(tmp_path / "nogo"), rows, selection, spec.engines.bundle_candidates)
    assert ranked["chosen"]["key"] == "onnxruntime-fp32-1-128" and "promised_rps" not in ranked
    assert any("Ranked by the engine alone (Go is not installed here" in line for line in ranked["reasoning"])


# --- the stage on Ray -----------------------------------------------------------------------------------------


def test_bench_measures_every_backend_and_writes_the_selection(tmp_path, make_run_dir):
    import pyarrow.parquet as pq
    from yoloforge.ray_app.pipeline import bench_run

    run_dir = make_run_dir({"backends": ["pytorch", "onnxruntime", "openvino", "tensorrt"],
                                            "precisions": ["fp32"], "batch_sizes": [1, 2]}, {"fps": 1})
    selection = bench_run(run_dir).record
    rows = pq.read_table(run_dir / "engines.parquet").to_pylist()
    status = {(r["backend"], r["batch"]): r["status"] for r in rows}
    assert status == {("pytorch", 1): "ok", ("pytorch", 2): "ok", ("onnxruntime", 1): "ok", ("onnxruntime", 2): "ok",
                      ("openvino", 1): "ok", ("openvino", 2): "ok", ("tensorrt", 1): "unavailable",
                      ("tensorrt", 2): "unavailable"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["throughput"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0 and r["peak_rss_mb"] > 0 for r in ok)
    assert all(r["cpu_ms_per_image"] > 0 for r in ok if r["device"] == "cpu")
    assert selection["met"] and selection["baseline"]["backend"] == "pytorch"
    fastest = max(ok, key=lambda r: r["throughput"])
    assert selection["chosen"]["throughput"] + selection["chosen"]["throughput_noise"] >= \
        fastest["throughput"] - fastest["throughput_noise"]  # the fastest, or as fast within the timing noise
    assert all(r["throughput_noise"] >= 0 for r in ok)
    on_disk = json.loads((run_dir / "selection.json").read_text())
    assert on_disk["chosen"]["key"] == selection["chosen"]["key"]
    assert (run_dir / "engines.png").stat().st_size > 10_000
    assert "promised_rps" not in selection  # engines.bundle_candidates 0: ranked by the engine alone, and it says so
    assert any("Ranked by the engine alone (engines.bundle_candidates is 0)" in line for line in selection["reasoning"])


def test_an_edge_device_gets_the_chosen_models_estimate_labelled_and_what_would_reach_the_target(make_run_dir):
    from yoloforge.engines.edge import EDGE_DEVICES, estimate_ms
    from yoloforge.engines.selection import Selection
    from yoloforge.ray_app.outcome import target_rows
    from yoloforge.ray_app.pipeline import bench_run

    run_dir = make_run_dir({"backends": ["onnxruntime"], "precisions": ["fp32"], "batch_sizes": [1]},
                           {"fps": 5000, "edge_device": "rpi5"})
    edge = bench_run(run_dir).record["edge"]
    assert edge["label"] == "estimated for rpi5" and (edge["backend"], edge["precision"]) == ("onnxruntime", "fp32")
    assert edge["latency_ms"] == pytest.approx(estimate_ms(EDGE_DEVICES["rpi5"], edge["gflops"])) and edge["gflops"] > 0
    assert edge["meets_fps"] is False and edge["advice"]  # 5000 FPS on a Pi: out of reach, and it says what would do
    on_disk = json.loads((run_dir / "selection.json").read_text())
    assert on_disk["edge"]["label"] == "estimated for rpi5"
    rows = target_rows({"fps": 5000, "edge_device": "rpi5"}, None, Selection(on_disk))  # the run's closing table
    row = next(r for r in rows if r.name == "throughput estimated for rpi5")
    assert row.met is False and row.target == ">= 5000 img/s"


def test_the_fastest_configs_are_served_by_the_bundle_and_the_promise_is_what_it_delivers(tmp_path, make_run_dir):
    import pyarrow.parquet as pq
    from yoloforge.engines.delivery_ranking import BUNDLE_MARGIN
    from yoloforge.engines.selection import promised
    from yoloforge.ray_app.pipeline import bench_run
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.export import stage_export

    run_dir = make_run_dir({"backends": ["onnxruntime", "openvino"], "precisions": ["fp32"], "batch_sizes": [1],
                            "bundle_candidates": 2})
    selection = bench_run(run_dir).record
    measured = selection["bundle_ranking"]["measured"]
    assert 1 <= len(measured) <= 2 and all(m.get("rps", 0) > 0 for m in measured), measured
    delivered = {m["key"]: m["rps"] for m in measured}
    rows = {r["key"]: r for r in pq.read_table(run_dir / "engines.parquet").to_pylist()}
    for m in measured:  # the server's CPU per request against its engine's alone, per image
        assert m["cpu_ms_per_request"] > 0
        assert m["cost_factor"] == pytest.approx(m["cpu_ms_per_request"] / rows[m["key"]]["cpu_ms_per_image"])
    assert selection["chosen"]["key"] in delivered
    assert promised(selection) == (delivered[selection["chosen"]["key"]], "RPS through the bundle")
    assert max(delivered.values()) <= selection["promised_rps"] * (1 + BUNDLE_MARGIN)
    assert not list(run_dir.glob(".delivery-*")), "the throwaway bundles are removed"
    stage_export(RunState.open(run_dir))
    export = json.loads((run_dir / "delivered.json").read_text())
    assert export["promised"] == selection["promised_rps"] and export["promised_as"] == "RPS through the bundle"
    assert export["config"] == selection["chosen"]["key"] and export["rps"] > 0
    assert export["cost_factor"] == pytest.approx(export["cpu_ms_per_request"] / export["engine_cpu_ms_per_image"])


def test_a_broken_backend_is_reported_and_the_others_go_on(tmp_path, make_run_dir):
    import pyarrow.parquet as pq
    from yoloforge.ray_app.pipeline import bench_run

    run_dir = make_run_dir({"backends": ["pytorch", "onnxruntime"], "precisions": ["fp32"],
                                            "batch_sizes": [1]})
    broken = run_dir / "engines" / f"best-{IMGSZ}-b1-fp32.onnx"  # a corrupt cached export
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"not an onnx model")
    bench_run(run_dir)
    rows = {r["backend"]: r for r in pq.read_table(run_dir / "engines.parquet").to_pylist()}
    assert rows["onnxruntime"]["status"] == "failed" and "onnx" in rows["onnxruntime"]["reason"].lower()
    assert rows["pytorch"]["status"] == "ok"


def test_a_large_space_is_searched_with_the_ga_within_its_budget(tmp_path, make_run_dir):
    import pyarrow.parquet as pq
    from yoloforge.ray_app.pipeline import bench_run

    run_dir = make_run_dir({"backends": ["pytorch", "onnxruntime", "openvino"],
                                            "precisions": ["fp32"], "batch_sizes": [1, 2, 4],
                                            "threads": [1, 2], "max_configs": 5})
    selection = bench_run(run_dir).record
    rows = pq.read_table(run_dir / "engines.parquet").to_pylist()
    assert selection["mode"] == "ga" and selection["space"] == 18
    assert len([r for r in rows if r["status"] != "unavailable"]) == 5
    assert selection["chosen"] is not None


def test_a_dataset_with_a_test_split_gets_the_search_best_and_the_chosen_engine_scored_on_it(tmp_path, detector):
    import shutil

    import yaml
    from yoloforge.ray_app.intake.synth import synth_dataset
    from yoloforge.ray_app.pipeline import bench_run

    from tests.conftest import build_run_dir

    weights, data = detector
    with_test = tmp_path / "with-test"
    shutil.copytree(data, with_test)
    unseen = synth_dataset(tmp_path / "unseen", "detect", n_train=1, n_val=6, imgsz=IMGSZ, seed=11)
    for kind in ("images", "labels"):
        shutil.copytree(unseen / kind / "val", with_test / kind / "test")
    config = yaml.safe_load((with_test / "data.yaml").read_text())
    (with_test / "data.yaml").write_text(yaml.safe_dump({**config, "path": str(with_test), "test": "images/test"}))
    run_dir = build_run_dir(tmp_path, (weights, with_test), {"backends": ["pytorch", "onnxruntime"],
                                                             "precisions": ["fp32"], "batch_sizes": [1]})
    selection = bench_run(run_dir).record
    test = json.loads((run_dir / "selection.json").read_text())["test"]
    assert set(test) == {"baseline", "chosen"} and test == json.loads(json.dumps(selection["test"]))
    assert test["baseline"]["key"] == selection["baseline"]["key"] and test["baseline"]["images"] == 6
    for scores in test.values():
        assert 0 <= scores["mAP50-95"] <= scores["mAP50"] <= 1
    gallery = json.loads((run_dir / "gallery" / "gallery.json").read_text())
    assert gallery["split"] == "test" and gallery["engine"] == selection["chosen"]["key"]
    assert len(gallery["images"]) == 6
    assert all((run_dir / "gallery" / name).stat().st_size > 1000 for name in gallery["images"])


def test_the_best_weights_get_per_class_accuracy_and_a_confusion_matrix(tmp_path, make_run_dir):
    from yoloforge.ray_app.pipeline import bench_run

    run_dir = make_run_dir({"backends": ["onnxruntime"], "precisions": ["fp32"], "batch_sizes": [1]})
    bench_run(run_dir)
    detail = json.loads((run_dir / "accuracy.json").read_text())
    assert detail["split"] == "val" and detail["names"] == ["circle", "square", "triangle"]
    matrix = np.asarray(detail["confusion"])
    assert matrix.shape == (4, 4)
    labelled = sum(c["instances"] for c in detail["per_class"].values())
    assert matrix[:, :3].sum() == labelled  # every labelled object is found as some class or missed
    assert all(0 <= c["AP50-95"] <= c["AP50"] <= 1 for c in detail["per_class"].values() if c["AP50"] is not None)
    assert json.loads((run_dir / "gallery" / "gallery.json").read_text())["split"] == "val"  # no test split


# --- freshness: what the engines stage's result depends on ------------------------------------------------------


def _engines_inputs(tmp_path: Path, **fields) -> dict:
    from yoloforge.ray_app.spec import parse_job
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.engines import STAGE

    spec = parse_job({"name": "fresh", "model": "yolo11n.yaml", "data": str(tmp_path), "runs_dir": str(tmp_path),
                      **fields})
    return STAGE.inputs(RunState(spec))


def test_the_engines_stage_runs_again_when_the_bundle_settings_change(tmp_path):
    # the configs are ranked through a bundle made with export:, so a ranking made with other settings is stale
    assert _engines_inputs(tmp_path) != _engines_inputs(tmp_path, export={"max_batch": 16})


def test_the_engines_stage_runs_again_when_the_servers_source_changes(tmp_path, monkeypatch):
    import yoloforge.serving.bundle as bundle

    source = tmp_path / "gateway"
    shutil.copytree(bundle.toolchain.GATEWAY, source, ignore=shutil.ignore_patterns("testdata"))
    monkeypatch.setattr(bundle.toolchain, "GATEWAY", source)
    before = _engines_inputs(tmp_path)
    main = next(source.rglob("main.go"))
    main.write_text(main.read_text() + "\n// changed\n")
    assert _engines_inputs(tmp_path) != before


@pytest.mark.parametrize(("backend", "device"), [("pytorch", "cpu"), ("onnxruntime", "cpu"), ("openvino", "cpu"),
                                                 ("openvino", "cuda:0"), ("tensorrt", "cuda:0"), ("pytorch", "cuda:0")])
def test_the_bundle_notes_a_substitute_engine_exactly_where_the_selection_is_told_the_server_cannot_run_it(
        backend, device):
    from yoloforge.serving.bundle import plan_engine

    _, _, notes = plan_engine(EngineConfig(backend, "fp32", 1, 128, None, device, ()))
    substituted = any("the Go server runs ONNX Runtime" in note for note in notes)
    assert substituted == (server_cannot_run({"backend": backend, "device": device}) is not None)
