"""Pre- and post-processing shared by every backend, written once and matching Ultralytics' own predict.

Images are HWC uint8 RGB numpy arrays. Detection and segmentation inputs are letterboxed (aspect kept, grey
padding 114, centred) to a square imgsz; classification inputs are resized on the short side and centre-cropped,
as Ultralytics' classify transforms do. Outputs are scaled back to the original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from yoloforge.engines.base import ModelFacts, Prediction

PAD_VALUE = 114
MAX_WH = 7680  # class offset for per-class NMS in one pass (Ultralytics' value)
MAX_NMS = 30000  # candidates kept for NMS, by confidence


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed in the square input: scale back with these."""

    height: int  # original size
    width: int
    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int
    new_w: int
    new_h: int


def letterbox_params(height: int, width: int, imgsz: int) -> Letterbox:
    r = min(imgsz / height, imgsz / width)
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    dw, dh = (imgsz - new_w) / 2, (imgsz - new_h) / 2
    return Letterbox(height, width, new_w / width, new_h / height, round(dw - 0.1), round(dh - 0.1), new_w, new_h)


def letterbox(image: np.ndarray, imgsz: int) -> tuple[np.ndarray, Letterbox]:
    h, w = image.shape[:2]
    lb = letterbox_params(h, w, imgsz)
    if (w, h) != (lb.new_w, lb.new_h):
        image = cv2.resize(image, (lb.new_w, lb.new_h), interpolation=cv2.INTER_LINEAR)
    top, left = lb.pad_y, lb.pad_x
    bottom, right = imgsz - lb.new_h - top, imgsz - lb.new_w - left
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3), lb


def center_crop(image: np.ndarray, imgsz: int) -> np.ndarray:
    """Short side to imgsz (bilinear, as torchvision does on PIL images), then the centre square."""
    h, w = image.shape[:2]
    new_w, new_h = (imgsz, int(imgsz * h / w)) if w <= h else (int(imgsz * w / h), imgsz)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    top, left = round((new_h - imgsz) / 2.0), round((new_w - imgsz) / 2.0)
    return resized[top: top + imgsz, left: left + imgsz]


def preprocess(images: list[np.ndarray], imgsz: int, task: str) -> tuple[np.ndarray, list[Letterbox]]:
    """RGB uint8 images → float32 (N, 3, imgsz, imgsz) in [0, 1], and how each was placed."""
    placed, boxes = [], []
    for image in images:
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = image[..., :3]
        if task == "classify":
            placed.append(center_crop(image, imgsz))
            boxes.append(Letterbox(image.shape[0], image.shape[1], 1.0, 1.0, 0, 0, imgsz, imgsz))
        else:
            out, lb = letterbox(image, imgsz)
            placed.append(out)
            boxes.append(lb)
    batch = np.ascontiguousarray(np.stack(placed).transpose(0, 3, 1, 2), dtype=np.float32)
    batch *= 1.0 / 255.0
    return batch, boxes


# --- post-processing ------------------------------------------------------------------------------------------


def xywh2xyxy(xywh: np.ndarray) -> np.ndarray:
    xy, half = xywh[:, :2], xywh[:, 2:4] / 2
    return np.concatenate([xy - half, xy + half], axis=1)


def box_iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with many."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area + areas - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int) -> np.ndarray:
    """Greedy NMS: indices of kept boxes, best first. One vectorised IoU row per kept box, at most max_keep rows."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_keep:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        order = rest[box_iou_one(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def detection_rows(raw: np.ndarray, nc: int, conf: float, iou: float, max_det: int,
                   end2end: bool, multi_label: bool = False) -> np.ndarray:
    """One image's raw head output → rows x1 y1 x2 y2 conf cls [mask coefficients] in input pixels.

    multi_label keeps every class above conf for a box (what validation scores), not only its best."""
    if end2end:  # (N, 6 + nm): already boxes, confidence, class
        rows = raw[raw[:, 4] > conf]
        return rows[:max_det].astype(np.float32)
    x = raw.T  # (4 + nc + nm, N) → (N, ...)
    scores = x[:, 4: 4 + nc]
    if multi_label and nc > 1:
        rows, cls = np.nonzero(scores > conf)
        x, best = x[rows], scores[rows, cls]
    else:
        cls = scores.argmax(axis=1)
        best = scores[np.arange(len(x)), cls]
        keep = best > conf
        x, cls, best = x[keep], cls[keep], best[keep]
    if len(x) > MAX_NMS:
        top = np.argsort(-best, kind="stable")[:MAX_NMS]
        x, cls, best = x[top], cls[top], best[top]
    boxes = xywh2xyxy(x[:, :4])
    kept = nms(boxes + cls[:, None] * MAX_WH, best, iou, max_det)
    return np.concatenate([boxes[kept], best[kept, None], cls[kept, None].astype(np.float32), x[kept, 4 + nc:]],
                          axis=1).astype(np.float32)


def scale_boxes(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    out = boxes.copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - lb.pad_x) / lb.gain_x
    out[:, [1, 3]] = (out[:, [1, 3]] - lb.pad_y) / lb.gain_y
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, lb.width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, lb.height)
    return out


def _sigmoid_free_masks(coef: np.ndarray, proto: np.ndarray, boxes: np.ndarray, imgsz: int) -> np.ndarray:
    """Mask logits at prototype size → upsampled to the input (bilinear) → > 0 → cropped to each box."""
    c, mh, mw = proto.shape
    logits = (coef @ proto.reshape(c, -1)).reshape(-1, mh, mw)
    up = np.stack([cv2.resize(m, (imgsz, imgsz), interpolation=cv2.INTER_LINEAR) for m in logits]) \
        if len(logits) else np.zeros((0, imgsz, imgsz), np.float32)
    masks = up > 0
    cols, rows = np.arange(imgsz)[None, None, :], np.arange(imgsz)[None, :, None]
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    return masks & (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)


def unletterbox_masks(masks: np.ndarray, lb: Letterbox) -> np.ndarray:
    """(n, imgsz, imgsz) bool → (n, H, W) bool at the original size."""
    if not len(masks):
        return np.zeros((0, lb.height, lb.width), bool)
    top, left = lb.pad_y, lb.pad_x
    content = masks[:, top: top + lb.new_h, left: left + lb.new_w].astype(np.float32)
    return np.stack([cv2.resize(m, (lb.width, lb.height), interpolation=cv2.INTER_LINEAR) for m in content]) > 0.5


def postprocess(outputs: list[np.ndarray], boxes: list[Letterbox], facts: ModelFacts, imgsz: int, *,
                conf: float = 0.25, iou: float = 0.7, max_det: int = 300, top_k: int = 5,
                multi_label: bool = False) -> list[Prediction]:
    """The model's raw outputs for a batch → one Prediction per image (the padding rows of a batch are dropped)."""
    nc = len(facts.names)
    nm = outputs[1].shape[1] if facts.task == "segment" else 0
    # NMS-free heads (YOLOv10, YOLO26 exported end to end) give (B, max_det, 6 + nm) rows instead of (B, 4+nc+nm, N)
    shape = outputs[0].shape
    end2end = facts.task != "classify" and shape[-1] == 6 + nm and shape[1] != 4 + nc + nm
    results = []
    for i, lb in enumerate(boxes):
        if facts.task == "classify":
            probs = outputs[0][i].astype(np.float32)
            top = np.argsort(-probs, kind="stable")[:top_k]
            results.append(Prediction(top=top, probs=probs[top], width=lb.width, height=lb.height))
            continue
        rows = detection_rows(outputs[0][i], nc, conf, iou, max_det, end2end, multi_label)
        masks = None
        if facts.task == "segment":
            masks = _sigmoid_free_masks(rows[:, 6:], outputs[1][i], rows[:, :4], imgsz)
            has_pixels = masks.any(axis=(1, 2))  # at input size, as Ultralytics' predict decides it
            rows, masks = rows[has_pixels], unletterbox_masks(masks[has_pixels], lb)
        results.append(Prediction(boxes=scale_boxes(rows[:, :4], lb), scores=rows[:, 4],
                                  classes=rows[:, 5].astype(np.int64), masks=masks, width=lb.width, height=lb.height))
    return results


def mask_polygons(masks: np.ndarray) -> list[list[list[float]]]:
    """Each mask's largest outer contour as [[x, y], ...] in image pixels (what the HTTP answer carries)."""
    polygons = []
    for mask in masks:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            polygons.append([])
            continue
        largest = max(contours, key=len).reshape(-1, 2)
        polygons.append([[float(x), float(y)] for x, y in largest])
    return polygons
