"""Pre- and post-processing shared by every backend, written once and matching Ultralytics' own predict.

Images are HWC uint8 RGB numpy arrays. Detection and segmentation inputs are letterboxed (aspect kept, grey
padding 114, centred) to a square imgsz; classification inputs are resized on the short side and centre-cropped,
as Ultralytics' classify transforms do. Outputs are scaled back to the original pixels.

An encoded image bound for a model (decode_for_model) is decoded at half its size in libjpeg's DCT where the
model's resize halves it (jpeg_reduction: where Ultralytics' boxes hold), never whole and then halved; the pixels
then stand for the original's size (`size` below), which placements and answers are in. The Go server decodes by
the same rule to the same pixels (serving/gateway/internal/jpegturbo).
"""

from __future__ import annotations

import io
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


class UndecodableImage(ValueError):
    """The bytes are not a JPEG, PNG or WebP image that decodes whole."""


def resized_size(width: int, height: int, imgsz: int, task: str) -> tuple[int, int]:
    """The (width, height) the model's transform resizes an image to: the letterbox's, or the classify
    transform's short side at imgsz."""
    if task == "classify":
        return (imgsz, int(imgsz * height / width)) if width <= height else (int(imgsz * width / height), imgsz)
    lb = letterbox_params(height, width, imgsz)
    return lb.new_w, lb.new_h


def jpeg_reduction(width: int, height: int, need_w: int, need_h: int) -> int:
    """The DCT reduction (1 or 2) a width x height JPEG is decoded at when the model's resize keeps need_w x need_h.

    2 only where that resize halves the image (the half-size decode is within a pixel of it): OpenCV's bilinear
    halving is a 2x2 average, as libjpeg's 1/2 IDCT nearly is, so Ultralytics' boxes hold (1280x720 frames at
    640 px: boxes moved p95 0.72 px, less than encoding the frame at JPEG quality 88 instead of 90 moves them,
    1.96). A larger reduction does not: OpenCV's bilinear at 1/4 averages 2 of every 4 pixels where the DCT
    averages all 4 (1280x720 at 320 px: p95 6.35 px, against 1.60 for the quality change; decoding at 1/2 and
    then resizing, 6.11), so such an image is decoded whole."""
    half_w, half_h = -(-width // 2), -(-height // 2)
    return 2 if need_w <= half_w <= need_w + 1 and need_h <= half_h <= need_h + 1 else 1


def decode_for_model(data: bytes, imgsz: int, task: str) -> tuple[np.ndarray, tuple[int, int]]:
    """A JPEG, PNG or WebP image → (RGB uint8 pixels, the original's (height, width)). A JPEG is decoded at the
    reduction jpeg_reduction picks for the model's resize (Pillow's draft: libjpeg's scaled IDCT, the pixels
    OpenCV's IMREAD_REDUCED_* give); alpha is dropped. Raises UndecodableImage for anything else, or for damaged
    or truncated data."""
    try:  # only the contract's formats: other openers (some need optional plugins) never see the bytes
        with Image.open(io.BytesIO(data), formats=["JPEG", "PNG", "WEBP"]) as im:
            width, height = im.size
            if im.format == "JPEG" and im.mode in ("RGB", "L", "YCbCr"):
                d = jpeg_reduction(width, height, *resized_size(width, height, imgsz, task))
                if d > 1:  # Pillow picks the largest reduction whose size is at least this: d
                    im.draft("RGB", (width // d, height // d))
            im.load()
            # an RGB image is not converted: convert() copies it, a third of a whole 1280x720 decode
            return np.asarray(im if im.mode == "RGB" else im.convert("RGB")), (height, width)
    except Exception as err:  # any decoder failure is the image's fault
        raise UndecodableImage(str(err) or type(err).__name__) from err


def letterbox_params(height: int, width: int, imgsz: int) -> Letterbox:
    r = min(imgsz / height, imgsz / width)
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    dw, dh = (imgsz - new_w) / 2, (imgsz - new_h) / 2
    return Letterbox(height, width, new_w / width, new_h / height, round(dw - 0.1), round(dh - 0.1), new_w, new_h)


def letterbox(image: np.ndarray, imgsz: int, size: tuple[int, int] | None = None) -> tuple[np.ndarray, Letterbox]:
    """size: the original's (height, width) where image was decoded reduced (decode_for_model)."""
    h, w = size or image.shape[:2]
    lb = letterbox_params(h, w, imgsz)
    if image.shape[1::-1] != (lb.new_w, lb.new_h):
        image = cv2.resize(image, (lb.new_w, lb.new_h), interpolation=cv2.INTER_LINEAR)
    top, left = lb.pad_y, lb.pad_x
    bottom, right = imgsz - lb.new_h - top, imgsz - lb.new_w - left
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3), lb


def center_crop(image: np.ndarray, imgsz: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Short side to imgsz (bilinear, as torchvision does on PIL images), then the centre square; size as
    letterbox's."""
    h, w = size or image.shape[:2]
    new_w, new_h = resized_size(w, h, imgsz, "classify")
    resized = image if image.shape[1::-1] == (new_w, new_h) else \
        np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    top, left = round((new_h - imgsz) / 2.0), round((new_w - imgsz) / 2.0)
    return resized[top: top + imgsz, left: left + imgsz]


def preprocess(images: list[np.ndarray], imgsz: int, task: str,
               sizes: list[tuple[int, int]] | None = None) -> tuple[np.ndarray, list[Letterbox]]:
    """RGB uint8 images → float32 (N, 3, imgsz, imgsz) in [0, 1], and how each was placed; sizes: each image's
    original (height, width) where it was decoded reduced (decode_for_model)."""
    placed, boxes = [], []
    for i, image in enumerate(images):
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = image[..., :3]
        size = sizes[i] if sizes else None
        if task == "classify":
            placed.append(center_crop(image, imgsz, size))
            h, w = size or image.shape[:2]
            boxes.append(Letterbox(h, w, 1.0, 1.0, 0, 0, imgsz, imgsz))
        else:
            out, lb = letterbox(image, imgsz, size)
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
    """Each mask's outer contour enclosing the largest area (on a tie, the region met first in raster order, as
    the Go server picks) as [[x, y], ...] in image pixels (what the HTTP answer carries)."""
    polygons = []
    for mask in masks:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            polygons.append([])
            continue
        width = mask.shape[1]  # a contour starts at its region's first pixel in raster order
        largest = max(contours, key=lambda c: (cv2.contourArea(c), -(c[0, 0, 1] * width + c[0, 0, 0])))
        largest = largest.reshape(-1, 2)
        polygons.append([[float(x), float(y)] for x, y in largest])
    return polygons
