"""The model a server serves: the engine configuration selection.json chose, loaded through engines/."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir
from yoloforge.engines.base import Engine, EngineConfig, ModelFacts
from yoloforge.engines.int8_choice import calibration_images, row_recipe
from yoloforge.engines.quantize import TODAY, Recipe
from yoloforge.engines.registry import load_engine
from yoloforge.engines.selection import Selection


class NotServable(YoloforgeError):
    """The run directory has nothing to serve yet (no selection, no model file); its fix names the command."""


@dataclass
class ServedModel:
    facts: ModelFacts
    config: EngineConfig
    model_file: Path
    weights: Path
    cache_dir: Path
    clean_dir: Path | None  # the run's clean dataset: int8 calibration images come from its training split
    version: str  # first 12 hex digits of the model file's sha256
    name: str
    note: str = ""  # e.g. why a config short of the targets is served
    extra: dict[str, Any] = field(default_factory=dict)
    recipe: Recipe | None = None  # how the int8 model was quantised (engines/int8_choice.py), re-used per batch
    calibration_count: int = TODAY.images  # how many training images calibrated it

    @classmethod
    def from_run(cls, run_dir: str | Path) -> ServedModel:
        run = RunDir(Path(run_dir))
        path = run.selection
        selection = run.read_selection()
        if selection is None:
            raise NotServable(f"{path} does not exist: the engines stage has not chosen a configuration yet",
                              fix=f"run `{run.continue_with()}`")
        chosen = Selection(selection)
        row = chosen.served
        note = "" if chosen.met else "no configuration met every target; serving the closest one"
        if row is None or not row.get("model_file"):
            raise NotServable(f"{path} names no configuration that ran; see its reasoning",
                              fix=f"re-run the benchmark: `yoloforge bench {run}`")
        return cls.from_row(run, selection, row, note)

    @classmethod
    def from_row(cls, run: RunDir, selection: dict[str, Any], row: dict[str, Any], note: str = "") -> ServedModel:
        """Any measured configuration of the run (a row of engines.parquet), served as if it had been chosen."""
        model_file = run.resolve(row["model_file"])
        if not model_file.is_file():
            raise NotServable(f"the model file {model_file} of {row['key']} is missing",
                              fix=f"re-run the benchmark: `yoloforge bench {run}`")
        facts = ModelFacts(**selection["model"])
        digest = hashlib.sha256(model_file.read_bytes()).hexdigest()[:12]
        return cls(facts=facts, config=EngineConfig.from_dict(row), model_file=model_file,
                   weights=run.resolve(selection["weights"]), cache_dir=run.engine_models, clean_dir=run.clean_dir(),
                   version=digest, name=run.name, note=note, recipe=row_recipe(row),
                   calibration_count=int(row.get("calibration_images") or TODAY.images))

    def load(self, batch: int | None = None, serving: bool = False, threads: int | None = None) -> Engine:
        """The engine for this config, at another batch size if asked (model files are exported per batch).

        serving: the engine shares the machine with an HTTP stack, so its threads must not spin when idle.
        threads: CPU threads of this engine instead of the config's (a server's lanes split the cores)."""
        config = self.config
        path, calibration = self.model_file, None
        if threads is not None:
            config = replace(config, threads=threads)
        if serving and config.backend == "onnxruntime":
            config = replace(config, options=tuple(sorted({**dict(config.options), "spin": False}.items())))
        if batch is not None and batch != config.batch:
            config = replace(config, batch=batch)
            calibration = self._calibration(config)
            path = self.file_for(config, calibration)
        return load_engine(config, path, self.weights, self.cache_dir, calibration)

    def _calibration(self, config: EngineConfig) -> np.ndarray | None:
        """int8 needs the training images the engines stage calibrated it on, else None."""
        if config.precision != "int8" or config.backend not in ("onnxruntime", "openvino", "tensorrt"):
            return None
        if self.clean_dir is None:
            raise NotServable("int8 needs calibration images, and the run's clean dataset is gone: run intake again")
        return calibration_images(self.clean_dir, self.facts.task, config.imgsz, self.calibration_count)

    def file_for(self, config: EngineConfig, calibration: np.ndarray | None = None) -> Path:
        """The model file of another config of this model (exported, quantised and cached as the benchmark does)."""
        from yoloforge.engines.export import model_file

        if config == self.config:
            return self.model_file
        if calibration is None:
            calibration = self._calibration(config)
        return model_file(config, self.weights, self.cache_dir, calibration, self.recipe)

    def info(self, max_batch_size: int, batch_wait_ms: float) -> dict[str, Any]:
        """GET /v1/model."""
        c = self.config
        return {"name": self.name, "version": self.version, "task": self.facts.task, "names": self.facts.names,
                "imgsz": c.imgsz, "engine": {"backend": c.backend, "precision": c.precision, "batch": c.batch,
                                             "device": c.device, "max_batch_size": max_batch_size,
                                             "batch_wait_ms": batch_wait_ms}}
