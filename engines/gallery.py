"""A validation or test image drawn twice, side by side: its labels, then a model's predictions (for report.html)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw
from yoloforge.engines.accuracy import Sample
from yoloforge.engines.base import Prediction

GALLERY_CONF = 0.25  # Ultralytics' predict default: what a user of the model would see
GALLERY_PX = 320  # each half this wide or high (the longer side)
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40)]


def _panel(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, texts: list[str], title: str) -> Image.Image:
    scale = min(4.0, GALLERY_PX / max(image.shape[:2]))  # small images are enlarged too, so labels stay readable
    panel = Image.fromarray(image).convert("RGB")
    if scale != 1:
        panel = panel.resize((round(image.shape[1] * scale), round(image.shape[0] * scale)))
    draw = ImageDraw.Draw(panel)
    for box, cls, text in zip(boxes * scale, classes, texts, strict=True):
        colour = PALETTE[int(cls) % len(PALETTE)]
        draw.rectangle([float(v) for v in box], outline=colour, width=2)
        draw.text((float(box[0]) + 2, float(box[1]) + 1), text, fill=colour)
    draw.text((4, 4), title, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return panel


def side_by_side(sample: Sample, answer: Prediction, names: list[str], task: str) -> bytes:
    """JPEG bytes: the labelled image on the left, the predicted one on the right."""
    if task == "classify":
        truth = names[int(sample.classes[0])]
        guess = names[int(answer.top[0])] if answer.top is not None and len(answer.top) else "-"
        prob = float(answer.probs[0]) if answer.probs is not None and len(answer.probs) else 0.0
        empty, none = np.zeros((0, 4)), np.zeros(0, int)
        left = _panel(sample.image, empty, none, [], f"label: {truth}")
        right = _panel(sample.image, empty, none, [], f"predicted: {guess} {prob:.2f}")
    else:
        left = _panel(sample.image, sample.boxes, sample.classes, [names[int(c)] for c in sample.classes],
                      f"labels ({len(sample.boxes)})")
        texts = [f"{names[int(c)]} {s:.2f}" for c, s in zip(answer.classes, answer.scores, strict=True)]
        right = _panel(sample.image, answer.boxes, answer.classes, texts, f"predicted ({len(answer.boxes)})")
    canvas = Image.new("RGB", (left.width + right.width + 8, left.height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 8, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
