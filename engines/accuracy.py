"""Accuracy of any engine configuration on the validation split, through the shared pipeline.

Detection and segmentation score boxes the way Ultralytics' validator does (conf 0.001, NMS IoU 0.7, greedy
matching by confidence at IoU 0.50:0.95, its ap_per_class for the AP integral), so PyTorch FP32 here agrees
with `yolo val`; classification scores top-1 / top-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from yoloforge.engines.predictor import Predictor

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Sample:
    image: np.ndarray  # RGB uint8
    boxes: np.ndarray  # (m, 4) xyxy pixels (detect/segment)
    classes: np.ndarray  # (m,) (detect/segment) or (1,) the image's class (classify)


def read_image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def label_boxes(text: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    boxes, classes = [], []
    for line in text.splitlines():
        values = [float(v) for v in line.split()]
        if len(values) < 5:
            continue
        coords = np.asarray(values[1:])
        if len(coords) == 4:  # cx cy w h
            cx, cy, w, h = coords
            box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        else:  # polygon: its bounding box, as Ultralytics derives it
            xy = coords.reshape(-1, 2)
            box = [*xy.min(axis=0), *xy.max(axis=0)]
        boxes.append(np.asarray(box) * [width, height, width, height])
        classes.append(int(values[0]))
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


def has_split(clean_dir: str | Path, task: str, split: str) -> bool:
    """Whether the intake's clean dataset holds this split (the test split is optional)."""
    clean_dir = Path(clean_dir)
    if task == "classify":
        return (clean_dir / split).is_dir()
    return bool(yaml.safe_load((clean_dir / "data.yaml").read_text()).get(split))


def load_split(clean_dir: str | Path, task: str, split: str = "val", limit: int | None = None) -> list[Sample]:
    """Images and labels of one split of the intake's clean dataset."""
    clean_dir = Path(clean_dir)
    samples: list[Sample] = []
    if task == "classify":
        classes = sorted(p.name for p in (clean_dir / "train").iterdir() if p.is_dir())
        for index, name in enumerate(classes):
            for path in sorted((clean_dir / split / name).glob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    samples.append(Sample(read_image(path), np.zeros((0, 4), np.float32), np.asarray([index])))
    else:
        data = yaml.safe_load((clean_dir / "data.yaml").read_text())
        root = Path(data.get("path") or clean_dir)
        images = sorted(p for p in (root / data.get(split, f"images/{split}")).rglob("*")
                        if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in images:
            label = root / "labels" / path.relative_to(root / "images").with_suffix(".txt")
            image = read_image(path)
            text = label.read_text() if label.is_file() else ""
            samples.append(Sample(image, *label_boxes(text, image.shape[1], image.shape[0])))
    if limit is not None and len(samples) > limit:  # an even spread, not the first classes only
        samples = [samples[i] for i in spread(len(samples), limit)]
    return samples


def spread(count: int, limit: int) -> np.ndarray:
    """The indices of `limit` items spread evenly over `count` (all of them when limit >= count)."""
    if limit >= count:
        return np.arange(count)
    return np.linspace(0, count - 1, limit).round().astype(int)


def labels_found(text: str, width: int, height: int, detections: list[dict]) -> tuple[int, int]:
    """(labelled objects an answer's detections found, at IoU >= 0.5 with the same class; labelled objects)."""
    boxes, classes = label_boxes(text, width, height)
    if not len(boxes) or not detections:
        return 0, len(boxes)
    found = np.asarray([d["box"] for d in detections], np.float32).reshape(-1, 4)
    same = classes[:, None] == np.asarray([d["class_id"] for d in detections])[None, :]
    return int(((box_iou(boxes, found) >= 0.5) & same).any(axis=1).sum()), len(boxes)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def match_predictions(pred_classes: np.ndarray, true_classes: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """(n_pred, 10) correct at each IoU threshold; predictions best first claim their best unclaimed label."""
    correct = np.zeros((len(pred_classes), len(IOU_THRESHOLDS)), bool)
    iou = iou * (true_classes[:, None] == pred_classes[None, :])
    matched = np.zeros((iou.shape[0], len(IOU_THRESHOLDS)), bool)
    columns = np.arange(len(IOU_THRESHOLDS))
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS.min()).any(0)):
        available = np.where(matched, 0, iou[:, j, None])
        k = available.argmax(0)
        correct[j] = available[k, columns] >= IOU_THRESHOLDS
        matched[k, columns] |= correct[j]
    return correct


def evaluate(predictor: Predictor, samples: list[Sample]) -> dict[str, float]:
    """mAP50 / mAP50-95 (boxes) or top1 / top5 of this predictor on these samples."""
    task = predictor.facts.task
    predictions = predictor.predict([s.image for s in samples], conf=0.001, iou=0.7, max_det=300,
                                    multi_label=True)
    if task == "classify":
        truth = np.asarray([s.classes[0] for s in samples])
        tops = [p.top if p.top is not None else np.zeros(0, int) for p in predictions]
        top1 = np.mean([len(t) > 0 and t[0] == c for t, c in zip(tops, truth, strict=True)])
        top5 = np.mean([c in t[:5] for t, c in zip(tops, truth, strict=True)])
        return {"top1": float(top1), "top5": float(top5)}
    ap, _ = _ap_per_class(predictions, samples)
    return {"mAP50": float(ap[:, 0].mean()) if len(ap) else 0.0, "mAP50-95": float(ap.mean()) if len(ap) else 0.0}


def _ap_per_class(predictions: list, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    """(AP at each IoU threshold per class present, those classes), scored as Ultralytics' validator does."""
    from ultralytics.utils.metrics import ap_per_class

    tps, confs, pred_cls, target_cls = [], [], [], []
    for pred, sample in zip(predictions, samples, strict=True):
        target_cls.append(sample.classes)
        if not len(pred.boxes):
            continue
        iou = box_iou(sample.boxes, pred.boxes) if len(sample.boxes) else np.zeros((0, len(pred.boxes)))
        tps.append(match_predictions(pred.classes, sample.classes, iou))
        confs.append(pred.scores)
        pred_cls.append(pred.classes)
    if not tps:
        return np.zeros((0, len(IOU_THRESHOLDS))), np.zeros(0, int)
    result = ap_per_class(np.concatenate(tps), np.concatenate(confs), np.concatenate(pred_cls),
                          np.concatenate(target_cls))
    return result[5], np.asarray(result[6], int)


# Ultralytics' confusion matrix thresholds: predictions above conf 0.25 matched to labels at IoU 0.45
CONFUSION_CONF, CONFUSION_IOU = 0.25, 0.45


def per_class_detail(predictor: Predictor, samples: list[Sample], names: list[str]) -> dict:
    """Per-class accuracy and the confusion matrix (rows: predicted, columns: true; the last row and column are
    background: a missed object, a detection of nothing) of this predictor on these samples."""
    nc = len(names)
    matrix = np.zeros((nc + 1, nc + 1), int)
    if predictor.facts.task == "classify":
        predictions = predictor.predict([s.image for s in samples], top_k=1)
        for pred, sample in zip(predictions, samples, strict=True):
            matrix[int(pred.top[0]) if pred.top is not None and len(pred.top) else nc, int(sample.classes[0])] += 1
        counts = matrix[:, :nc].sum(axis=0)
        per_class = {names[k]: {"top1": float(matrix[k, k] / counts[k]) if counts[k] else None,
                                "images": int(counts[k])} for k in range(nc)}
        return {"per_class": per_class, "confusion": matrix.tolist(), "names": names, "images": len(samples)}
    predictions = predictor.predict([s.image for s in samples], conf=0.001, iou=0.7, max_det=300, multi_label=True)
    ap, present = _ap_per_class(predictions, samples)
    instances = np.bincount(np.concatenate([s.classes for s in samples] or [np.zeros(0, int)]).astype(int),
                            minlength=nc)
    per_class = {name: {"AP50": None, "AP50-95": None, "instances": int(instances[k])} for k, name in enumerate(names)}
    for row, k in zip(ap, present, strict=True):
        per_class[names[k]].update({"AP50": float(row[0]), "AP50-95": float(row.mean())})
    for pred, sample in zip(predictions, samples, strict=True):
        keep = pred.scores >= CONFUSION_CONF
        boxes, classes = pred.boxes[keep], pred.classes[keep]
        iou = box_iou(sample.boxes, boxes) if len(sample.boxes) and len(boxes) else np.zeros((len(sample.boxes),
                                                                                                len(boxes)))
        used_true, used_pred = set(), set()
        for t, q in sorted(zip(*np.nonzero(iou >= CONFUSION_IOU), strict=True), key=lambda tq: -iou[tq]):
            if t in used_true or q in used_pred:
                continue
            used_true.add(t)
            used_pred.add(q)
            matrix[int(classes[q]), int(sample.classes[t])] += 1
        for t in set(range(len(sample.boxes))) - used_true:
            matrix[nc, int(sample.classes[t])] += 1
        for q in set(range(len(boxes))) - used_pred:
            matrix[int(classes[q]), nc] += 1
    return {"per_class": per_class, "confusion": matrix.tolist(), "names": names, "images": len(samples),
            "conf": CONFUSION_CONF, "iou": CONFUSION_IOU}


def accuracy_metric(task: str) -> str:
    """The metric whose drop limits engine choice (targets.max_accuracy_drop)."""
    return "top1" if task == "classify" else "mAP50-95"
