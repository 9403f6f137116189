"""Images in, Predictions out, on any Engine: the shared pre/post-processing around engine.infer()."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
from yoloforge.engines.base import Engine, ModelFacts, Prediction
from yoloforge.engines.processing import postprocess, preprocess


def plan_batches(n: int, call_ms: Mapping[int, float]) -> list[int]:
    """The engine batch sizes that run n images at the least measured cost (a size may be padded).

    On a CPU a batch-8 call costs about eight batch-1 calls, so four images are best run as four batch-1 calls;
    on a GPU the batch-8 call costs little more than one image, so they are padded to eight. The same rule in
    the Go server's engine package."""
    cost = [0.0] + [math.inf] * n
    pick = [0] * (n + 1)
    for i in range(1, n + 1):
        for size, ms in call_ms.items():
            c = ms + cost[max(0, i - size)]
            if c < cost[i]:
                cost[i], pick[i] = c, size
    plan, i = [], n
    while i > 0:
        plan.append(pick[i])
        i = max(0, i - pick[i])
    return sorted(plan, reverse=True)


def batching_gain(call_ms: Mapping[int, float]) -> float:
    """How much cheaper per image the best batch size is than single images (1.0: batching buys nothing)."""
    single = call_ms.get(1, math.inf)
    best = min(ms / size for size, ms in call_ms.items())
    return single / best if math.isfinite(single) else 1.0


def measure_call_ms(engines: Mapping[int, Engine], shape: tuple[int, ...], runs: int = 5) -> dict[int, float]:
    """Median time of one call per engine batch size, on zeros of the input shape (after a warm-up call)."""
    times = {}
    for size, engine in engines.items():
        x = np.zeros((size, *shape), np.float32)
        engine.infer(x)
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            engine.infer(x)
            samples.append((time.perf_counter() - started) * 1000)
        times[size] = float(np.median(samples))
    return times


def run_batches(engines: Mapping[int, Engine], tensor: np.ndarray, plan: list[int] | None = None) -> list[np.ndarray]:
    """Run n images through fixed-batch engines in the sizes of plan (see plan_batches); without a plan, full
    chunks on the largest and the rest on batch 1 (or padded when it is at least half a chunk)."""
    big = max(engines)
    outputs: list[list[np.ndarray]] = []
    start, n = 0, len(tensor)
    sizes = iter(plan or [])
    while start < n:
        left = n - start
        size = next(sizes, None) or (big if left >= big or (left * 2 >= big or 1 not in engines) else 1)
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
