"""The answer body of the HTTP contract (serving/openapi.yaml) for one image's prediction: what both servers send.
It lives here, above engines/: a Prediction is the engines' result, the JSON is the servers' contract."""

from __future__ import annotations

from typing import Any

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
