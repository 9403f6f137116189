"""Images in, Predictions out, on any Engine: the shared pre/post-processing around engine.infer()."""

from __future__ import annotations

import numpy as np

from engines.base import Engine, ModelFacts, Prediction
from engines.processing import postprocess, preprocess


def run_batches(engines: dict[int, Engine], tensor: np.ndarray) -> list[np.ndarray]:
    """Run n images through fixed-batch engines: full chunks on the largest, the rest on batch 1 (or padded when
    it is at least half a chunk), so a lone request never pays for seven padding images."""
    big = max(engines)
    outputs: list[list[np.ndarray]] = []
    start, n = 0, len(tensor)
    while start < n:
        left = n - start
        size = big if left >= big or (left * 2 >= big or 1 not in engines) else 1
        chunk = tensor[start: start + size]
        if len(chunk) < size:
            chunk = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        outs = engines[size].infer(chunk)
        take = min(size, left)
        outputs.append([o[:take] for o in outs])
        start += take
    return [np.concatenate(parts) for parts in zip(*outputs, strict=True)]


class Predictor:
    def __init__(self, engine: Engine, facts: ModelFacts) -> None:
        self.engine = engine
        self.facts = facts
        self.imgsz = engine.config.imgsz
        self.batch = engine.config.batch

    def infer_batch(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run up to one engine batch; a short one is padded (engines may have a fixed batch) and trimmed."""
        return run_batches({self.batch: self.engine}, tensor)

    def predict(self, images: list[np.ndarray], *, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                top_k: int = 5, multi_label: bool = False) -> list[Prediction]:
        results: list[Prediction] = []
        for start in range(0, len(images), self.batch):
            tensor, placed = preprocess(images[start: start + self.batch], self.imgsz, self.facts.task)
            outputs = self.infer_batch(tensor)
            results += postprocess(outputs, placed, self.facts, self.imgsz, conf=conf, iou=iou, max_det=max_det,
                                   top_k=top_k, multi_label=multi_label)
        return results
