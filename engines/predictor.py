"""Images in, Predictions out, on any Engine: the shared pre/post-processing around engine.infer()."""

from __future__ import annotations

import numpy as np

from engines.base import Engine, ModelFacts, Prediction
from engines.processing import postprocess, preprocess


class Predictor:
    def __init__(self, engine: Engine, facts: ModelFacts) -> None:
        self.engine = engine
        self.facts = facts
        self.imgsz = engine.config.imgsz
        self.batch = engine.config.batch

    def infer_batch(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run exactly one engine batch; a short one is padded (engines may have a fixed batch) and trimmed."""
        n = len(tensor)
        if n < self.batch:
            tensor = np.concatenate([tensor, np.zeros((self.batch - n, *tensor.shape[1:]), tensor.dtype)])
        return [out[:n] for out in self.engine.infer(tensor)]

    def predict(self, images: list[np.ndarray], *, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                top_k: int = 5, multi_label: bool = False) -> list[Prediction]:
        results: list[Prediction] = []
        for start in range(0, len(images), self.batch):
            tensor, placed = preprocess(images[start: start + self.batch], self.imgsz, self.facts.task)
            outputs = self.infer_batch(tensor)
            results += postprocess(outputs, placed, self.facts, self.imgsz, conf=conf, iou=iou, max_det=max_det,
                                   top_k=top_k, multi_label=multi_label)
        return results
