"""How a stream's frames are detected: the engine lanes of a run's chosen configuration (engines/lanes.py, the
preview's rule) and the engines' own pre- and post-processing, the one inference path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from yoloforge.engines.base import Engine, ModelFacts, Prediction
from yoloforge.engines.lanes import engine_lanes
from yoloforge.engines.predictor import measure_call_ms, plan_batches, run_batches
from yoloforge.engines.processing import postprocess, preprocess
from yoloforge.engines.registry import cpu_count

if TYPE_CHECKING:  # a run's model; the bundle's stream service builds its lanes from its own files (bundled.py)
    from yoloforge.serving.served import ServedModel


@dataclass
class Inference:
    """How frames are detected: the engine lanes of a run's chosen configuration and the thresholds."""

    lanes: list[dict[int, Engine]]
    facts: ModelFacts
    imgsz: int
    batch: int
    call_ms: dict[int, float]
    conf: float = 0.1  # low: ByteTrack's second association uses the weak detections
    iou: float = 0.7

    @classmethod
    def from_run(cls, run_dir: str | Path, *, lanes: int | None = None, batch: int | None = None,
                 conf: float = 0.1) -> Inference:
        """The run's chosen engine, as many copies side by side as the engines rule says for two batches at once
        (or `lanes`), each with batch-1 beside the selected batch so a lone frame is not padded."""
        from yoloforge.serving.served import ServedModel

        return cls.from_served(ServedModel.from_run(run_dir), lanes=lanes, batch=batch, conf=conf)

    @classmethod
    def from_served(cls, served: ServedModel, *, lanes: int | None = None, batch: int | None = None,
                    conf: float = 0.1) -> Inference:
        """from_run for a served model made elsewhere (`yoloforge track --model`: no run directory)."""
        count, threads = engine_lanes(2, served.config)
        if lanes is not None and lanes != count:
            count = lanes
            threads = max(1, (served.config.threads or cpu_count()) // lanes) if served.config.device == "cpu" else None
        size = batch or served.config.batch
        copies = [{s: served.load(s, serving=True, threads=threads) for s in {size, 1}} for _ in range(count)]
        call_ms = measure_call_ms(copies[0], (3, served.config.imgsz, served.config.imgsz))
        return cls(copies, served.facts, served.config.imgsz, size, call_ms, conf)

    def detect(self, lane: dict[int, Engine], images: list[np.ndarray]) -> list[Prediction]:
        tensor, placed = preprocess(images, self.imgsz, self.facts.task)
        outputs = run_batches(lane, tensor, plan_batches(len(images), self.call_ms))
        return postprocess(outputs, placed, self.facts, self.imgsz, conf=self.conf, iou=self.iou)

    def close(self) -> None:
        for lane in self.lanes:
            for engine in lane.values():
                engine.close()
