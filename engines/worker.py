"""One backend's benchmark worker: builds each config's model file, loads it, times it, scores its accuracy.

Runs inside a Ray actor (engines/runner.py), one per backend, so a backend that fails to import, convert or
even crashes its process is reported as such and the other backends go on.
"""

from __future__ import annotations

import functools
import gc
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from yoloforge.engines.accuracy import Sample, evaluate, load_split, per_class_detail
from yoloforge.engines.base import EngineConfig, EngineUnavailable, ModelFacts
from yoloforge.engines.export import model_file
from yoloforge.engines.gallery import GALLERY_CONF, side_by_side
from yoloforge.engines.harness import PeakRss, cuda_peak_mb, reset_cuda_peak, time_lanes
from yoloforge.engines.predictor import Predictor
from yoloforge.engines.processing import preprocess
from yoloforge.engines.registry import load_engine

CALIBRATION_IMAGES = 32


class BackendWorker:
    def __init__(self, weights: str, facts: dict[str, Any], clean_dir: str, models_dir: str, *,
                 val_limit: int | None = 64, min_time_s: float = 2.0, min_runs: int = 10) -> None:
        self.weights = Path(weights)
        self.facts = ModelFacts(**facts)
        self.clean_dir = clean_dir
        self.models_dir = Path(models_dir)
        self.val_limit = val_limit
        self.min_time_s, self.min_runs = min_time_s, min_runs
        self._val: list[Sample] | None = None
        self._calibration: dict[int, np.ndarray] = {}
        # a layout of copies runs the model file its single-copy twin ran: the same answers, scored once
        self._accuracy: dict[tuple[str, int], dict[str, float]] = {}

    def val_samples(self) -> list[Sample]:
        if self._val is None:
            self._val = load_split(self.clean_dir, self.facts.task, "val", self.val_limit)
        return self._val

    def calibration(self, imgsz: int) -> np.ndarray:
        """Pre-processed training images (never validation ones: accuracy is measured on those)."""
        if imgsz not in self._calibration:
            samples = load_split(self.clean_dir, self.facts.task, "train", CALIBRATION_IMAGES)
            self._calibration[imgsz] = preprocess([s.image for s in samples], imgsz, self.facts.task)[0]
        return self._calibration[imgsz]

    def inspect(self, config_dict: dict[str, Any], split: str, *, score: bool = False, detail: bool = False,
                gallery: int = 0) -> dict[str, Any]:
        """What one config does on a whole split: its accuracy (score), per-class accuracy and confusion matrix
        (detail), and `gallery` images drawn with their labels beside its predictions (JPEG bytes)."""
        config = EngineConfig.from_dict(config_dict)
        calibration = self.calibration(config.imgsz) if config.precision == "int8" else None
        with FileLock(str(self.models_dir / ".export.lock")):
            path = model_file(config, self.weights, self.models_dir, calibration)
        engine = load_engine(config, path, self.weights, self.models_dir, calibration)
        try:
            predictor = Predictor(engine, self.facts)
            samples = load_split(self.clean_dir, self.facts.task, split)
            out: dict[str, Any] = {"split": split, "images": len(samples)}
            if score:
                out["score"] = evaluate(predictor, samples)
            if detail:
                out["detail"] = per_class_detail(predictor, samples, list(self.facts.names))
            if gallery:
                picks = [samples[i] for i in np.linspace(0, len(samples) - 1, min(gallery, len(samples))).astype(int)]
                answers = predictor.predict([s.image for s in picks], conf=GALLERY_CONF)
                out["gallery"] = [side_by_side(s, a, list(self.facts.names), self.facts.task)
                                  for s, a in zip(picks, answers, strict=True)]
            return out
        finally:
            engine.close()
            gc.collect()

    def measure(self, config_dict: dict[str, Any]) -> dict[str, Any]:
        config = EngineConfig.from_dict(config_dict)
        row: dict[str, Any] = {**config.as_dict(), "key": config.key, "status": "ok", "reason": None}
        engine = None
        copies: list = []
        try:
            calibration = self.calibration(config.imgsz) if config.precision == "int8" else None
            started = time.perf_counter()
            with FileLock(str(self.models_dir / ".export.lock")):
                path = model_file(config, self.weights, self.models_dir, calibration)
            row["model_file"] = str(path)
            row["build_s"] = time.perf_counter() - started
            reset_cuda_peak(config.device)
            with PeakRss() as rss:
                started = time.perf_counter()
                engine = load_engine(config, path, self.weights, self.models_dir, calibration)
                copies = [load_engine(config, path, self.weights, self.models_dir, calibration)
                          for _ in range((config.lanes or 1) - 1)]
                row["load_s"] = time.perf_counter() - started
                tensor = preprocess([s.image for s in self.val_samples()[: config.batch]] or
                                    [np.zeros((config.imgsz, config.imgsz, 3), np.uint8)], config.imgsz,
                                    self.facts.task)[0]
                if len(tensor) < config.batch:
                    tensor = np.resize(tensor, (config.batch, *tensor.shape[1:]))
                timing = time_lanes([functools.partial(e.infer, tensor) for e in [engine, *copies]], config.batch,
                                    min_time_s=self.min_time_s, min_runs=self.min_runs)
            row.update(timing.as_dict())
            row["peak_rss_mb"] = rss.peak_mb
            row["cuda_peak_mb"] = cuda_peak_mb(config.device)
            started = time.perf_counter()
            scored = (str(path), config.batch)
            if scored not in self._accuracy:
                self._accuracy[scored] = evaluate(Predictor(engine, self.facts), self.val_samples())
            row.update(self._accuracy[scored])
            row["accuracy_s"] = time.perf_counter() - started
        except EngineUnavailable as err:
            row.update(status="unavailable", reason=str(err))
        except Exception as err:
            row.update(status="failed", reason=f"{type(err).__name__}: {err}".strip()[:500],
                       traceback=traceback.format_exc()[-4000:])
        finally:
            for e in [engine, *copies]:
                if e is not None:
                    e.close()
            gc.collect()
        return row
