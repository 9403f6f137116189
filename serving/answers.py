"""The answer body of the HTTP contract (serving/openapi.yaml) for one image's prediction: what both servers send.
It lives here, above engines/: a Prediction is the engines' result, the JSON is the servers' contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yoloforge.engines.accuracy import labels_found
from yoloforge.engines.base import Prediction
from yoloforge.engines.processing import mask_polygons


def answer_body(prediction: Prediction, names: list[str], task: str) -> dict[str, Any]:
    """The body of the HTTP contract's answer for this image."""
    answer: dict[str, Any] = {"task": task, "image": {"width": prediction.width, "height": prediction.height}}
    if task == "classify":
        assert prediction.top is not None and prediction.probs is not None
        answer["top"] = [{"class_id": int(c), "class_name": names[int(c)], "confidence": round(float(p), 5)}
                         for c, p in zip(prediction.top, prediction.probs, strict=True)]
        return answer
    answer["detections"] = [
        {"class_id": int(c), "class_name": names[int(c)], "confidence": round(float(s), 5),
         "box": [round(float(v), 2) for v in b]}
        for b, s, c in zip(prediction.boxes, prediction.scores, prediction.classes, strict=True)]
    if task == "segment" and prediction.masks is not None:
        for det, polygon in zip(answer["detections"], mask_polygons(prediction.masks), strict=True):
            det["polygon"] = polygon
    return answer


def describe_answer(image: Path, body: dict) -> str:
    """What an answer found, against the image's own label: '3 detections; 3 of 3 labelled objects found ...'."""
    if "top" in body:
        top = body["top"][0]["class_name"] if body["top"] else None
        return f"top class {top} ({'right' if top == image.parent.name else 'labelled ' + image.parent.name})"
    detections = body.get("detections", [])
    parts = list(image.parts)
    index = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if index is None:
        return f"{len(detections)} detections"
    label = Path(*parts[:index], "labels", *parts[index + 1:]).with_suffix(".txt")
    text = label.read_text() if label.is_file() else ""
    hit, total = labels_found(text, body["image"]["width"], body["image"]["height"], detections)
    return f"{len(detections)} detections; {hit} of {total} labelled objects found (IoU >= 0.5, same class)"
