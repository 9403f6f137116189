"""One backend's benchmark worker: builds each config's model file, loads it, times it, scores its accuracy.

Runs inside a Ray actor (engines/runner.py), one per backend, so a backend that fails to import, convert or
even crashes its process is reported as such and the other backends go on.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from yoloforge.engines.accuracy import Sample, evaluate, has_split, load_split, per_class_detail
from yoloforge.engines.base import EngineConfig, EngineUnavailable, ModelFacts
from yoloforge.engines.export import model_file
from yoloforge.engines.gallery import GALLERY_CONF, side_by_side
from yoloforge.engines.harness import PeakRss, cuda_peak_mb, reset_cuda_peak, time_lanes
from yoloforge.engines.int8_choice import (
    CALIBRATION_POOL,
    RECIPE_BACKENDS,
    RecipeChoice,
    calibration_images,
    choose_recipe,
    unlabelled_images,
)
from yoloforge.engines.predictor import Predictor
from yoloforge.engines.processing import preprocess
from yoloforge.engines.quantize import TODAY
from yoloforge.engines.registry import load_engine


class BackendWorker:
    def __init__(self, weights: str, facts: dict[str, Any], clean_dir: str | None, models_dir: str, *,
                 val_limit: int | None = 64, min_time_s: float = 2.0, min_runs: int = 10,
                 int8_budget_s: float = 0.0, frames: list[np.ndarray] | None = None) -> None:
        """clean_dir None: there are no labels (`yoloforge track --model`), so configs are timed on `frames` (a
        video's own) and their accuracy is not scored."""
        self.weights = Path(weights)
        self.facts = ModelFacts(**facts)
        self.clean_dir = clean_dir
        self.models_dir = Path(models_dir)
        self.val_limit = val_limit
        self.min_time_s, self.min_runs = min_time_s, min_runs
        self._val: list[Sample] | None = None
        self._test: list[Sample] | None = None
        self.int8_budget_s = int8_budget_s
        self.frames = frames
        self._calibration: dict[int, np.ndarray] = {}
        self._choices: dict[tuple[str, int], RecipeChoice] = {}
        # a layout of copies runs the model file its single-copy twin ran: the same answers, scored once
        self._accuracy: dict[tuple[str, int], dict[str, float]] = {}

    def val_samples(self) -> list[Sample]:
        if self.clean_dir is None:
            return []
        if self._val is None:
            self._val = load_split(self.clean_dir, self.facts.task, "val", self.val_limit)
        return self._val

    def test_samples(self) -> list[Sample] | None:
        """The test split, where the dataset has one: an int8 recipe chosen on validation images is checked there."""
        if self._test is None and self.clean_dir is not None and has_split(self.clean_dir, self.facts.task, "test"):
            self._test = load_split(self.clean_dir, self.facts.task, "test", self.val_limit)
        return self._test

    def calibration(self, imgsz: int) -> np.ndarray:
        """The int8 calibration images at this size (engines/int8_choice.py decides which)."""
        if self.clean_dir is None:
            raise EngineUnavailable("int8 is not tried without labels: its accuracy could not be checked")
        if imgsz not in self._calibration:
            count = CALIBRATION_POOL if self.int8_budget_s > 0 else TODAY.images
            self._calibration[imgsz] = calibration_images(self.clean_dir, self.facts.task, imgsz, count)
        return self._calibration[imgsz]

    def recipe_choice(self, config: EngineConfig) -> RecipeChoice | None:
        """The int8 recipe searched for this config's backend and input size (once per worker, cached on disk);
        None where no recipe is searched (another precision or backend, or engines.int8_budget_s is 0)."""
        if config.precision != "int8" or config.backend not in RECIPE_BACKENDS or self.int8_budget_s <= 0:
            return None
        key = (config.backend, config.imgsz)
        if key not in self._choices:
            with FileLock(str(self.models_dir / ".export.lock")):
                self._choices[key] = choose_recipe(
                    config.backend, self.weights, dataclasses.replace(self.facts, imgsz=config.imgsz),
                    self.models_dir, self.calibration(config.imgsz), self.val_samples(), self.int8_budget_s,
                    config.device, self.test_samples(), unlabelled_images(self.clean_dir, self.facts.task))
        return self._choices[key]

    def _model_file(self, config: EngineConfig, calibration: np.ndarray | None) -> Path:
        choice = self.recipe_choice(config)
        with FileLock(str(self.models_dir / ".export.lock")):
            return model_file(config, self.weights, self.models_dir, calibration, choice.recipe if choice else None)

    def inspect(self, config_dict: dict[str, Any], split: str, *, score: bool = False, detail: bool = False,
                gallery: int = 0) -> dict[str, Any]:
        """What one config does on a whole split: its accuracy (score), per-class accuracy and confusion matrix
        (detail), and `gallery` images drawn with their labels beside its predictions (JPEG bytes)."""
        config = EngineConfig.from_dict(config_dict)
        calibration = self.calibration(config.imgsz) if config.precision == "int8" else None
        path = self._model_file(config, calibration)
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
            if calibration is not None:
                row["calibration_images"] = len(calibration)
            if (choice := self.recipe_choice(config)) is not None:
                row.update(choice.row_fields())
            started = time.perf_counter()
            path = self._model_file(config, calibration)
            row["model_file"] = str(path)
            row["build_s"] = time.perf_counter() - started
            reset_cuda_peak(config.device)
            with PeakRss() as rss:
                started = time.perf_counter()
                engine = load_engine(config, path, self.weights, self.models_dir, calibration)
                copies = [load_engine(config, path, self.weights, self.models_dir, calibration)
                          for _ in range((config.lanes or 1) - 1)]
                row["load_s"] = time.perf_counter() - started
                images = self.frames if self.frames is not None else [s.image for s in self.val_samples()]
                tensor = preprocess(images[: config.batch] or
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
            if self.clean_dir is not None:  # else no labels: speed only
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
