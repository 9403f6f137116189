"""The run directory (runs/<name>/...): the one place that names its files and reads them back.

Every stage and command reaches a run's files through a RunDir, so a file's name is written once, here, and the
"not a run directory" error is raised in one place.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoloforge.core.errors import MissingInput, YoloforgeError


class NotARunDirectory(YoloforgeError):
    """A command was given a folder that `yoloforge run` did not create."""


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run: its job.yaml must be there."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise MissingInput(f"{run.path} does not exist",
                               fix="give the folder under runs/ that `yoloforge run` created")
        if not run.job.is_file():
            raise NotARunDirectory(f"{run.path} is not a yoloforge run directory (no job.yaml)",
                                   fix="give the folder under runs/ that `yoloforge run` created")
        return run

    def __str__(self) -> str:
        return str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    # --- intake ---------------------------------------------------------------------------------------------
    @property
    def job(self) -> Path:
        return self.path / "job.yaml"

    @property
    def model_info(self) -> Path:
        return self.path / "model.json"

    @property
    def dataset_report(self) -> Path:
        return self.path / "dataset_report.json"

    @property
    def data(self) -> Path:
        """Intake's working folder: the clean copy of the dataset and the quarantine."""
        return self.path / "data"

    @property
    def stages(self) -> Path:
        """Each stage's input fingerprint, written when it finished (ray_app/stages/freshness.py)."""
        return self.path / "stages.json"

    # --- search ---------------------------------------------------------------------------------------------
    @property
    def search(self) -> Path:
        """Tune's experiments (one per search round), the searcher's state and status.json."""
        return self.path / "search"

    @property
    def search_status(self) -> Path:
        return self.search / "status.json"

    @property
    def ga_state(self) -> Path:
        return self.search / "ga_state.json"

    @property
    def trials(self) -> Path:
        return self.path / "trials.parquet"

    @property
    def pareto(self) -> Path:
        return self.path / "pareto.parquet"

    @property
    def best(self) -> Path:
        return self.path / "best"

    @property
    def best_weights(self) -> Path:
        return self.best / "best.pt"

    @property
    def best_metrics(self) -> Path:
        return self.best / "metrics.json"

    @property
    def best_hyp(self) -> Path:
        """The best trial's training arguments: `yolo train cfg=best/hyp.yaml data=... model=...` trains it again."""
        return self.best / "hyp.yaml"

    @property
    def best_ultralytics_config(self) -> Path:
        """YOLO_CONFIG_DIR for training the best trial again: Ultralytics' settings without its Ray Tune integration
        (ray_app/search/hyp_file.py says why)."""
        return self.best / "ultralytics"

    @property
    def previous(self) -> Path:
        """Where a finished search is moved when a new one starts (never deleted)."""
        return self.path / "previous"

    # --- engines --------------------------------------------------------------------------------------------
    @property
    def engine_models(self) -> Path:
        """Exported and quantised model files, cached per configuration."""
        return self.path / "engines"

    @property
    def engines_table(self) -> Path:
        return self.path / "engines.parquet"

    @property
    def selection(self) -> Path:
        return self.path / "selection.json"

    @property
    def engines_chart(self) -> Path:
        return self.path / "engines.png"

    @property
    def accuracy(self) -> Path:
        return self.path / "accuracy.json"

    @property
    def gallery(self) -> Path:
        return self.path / "gallery"

    # --- export and report ----------------------------------------------------------------------------------
    @property
    def bundle(self) -> Path:
        return self.path / "bundle"

    @property
    def tracks(self) -> Path:
        """`yoloforge track`'s outputs, one folder per stream."""
        return self.path / "tracks"

    @property
    def delivered(self) -> Path:
        """What the bundle's own server delivered under load at export, beside the selection's promise."""
        return self.path / "delivered.json"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    # --- recorded paths -------------------------------------------------------------------------------------
    def record(self, path: str | Path) -> str:
        """How a file the run produced is written into the run's own files: relative to the run directory, so a
        run directory moved elsewhere (or Ray's temporary folder cleaned) still finds it. A path outside the run
        (the user's input) is kept as it is."""
        absolute = Path(path).resolve()
        root = self.path.resolve()
        return os.path.relpath(absolute, root) if absolute.is_relative_to(root) else str(path)

    def resolve(self, recorded: str | Path) -> Path:
        """A path read from the run's files: relative ones are the run directory's (record); absolute ones, from
        the user's inputs or from runs written before paths were recorded relative, are used as they are."""
        return self.path / recorded

    # --- loaders --------------------------------------------------------------------------------------------
    def read_dataset_report(self) -> dict[str, Any]:
        """dataset_report.json, or {} when intake has not written it."""
        return read_json(self.dataset_report) or {}

    def read_model_info(self) -> dict[str, Any] | None:
        return read_json(self.model_info)

    def read_selection(self) -> dict[str, Any] | None:
        return read_json(self.selection)

    def clean_dir(self) -> Path | None:
        """The clean copy of the dataset intake wrote, as its report names it."""
        clean = self.read_dataset_report().get("clean_dir")
        return self.resolve(clean) if clean else None

    def sample_image(self) -> Path | None:
        """A validation image of the clean dataset (the first JPEG or PNG, else any image): what the preview and
        the bundle are tried with, and checked against its labels."""
        return next(iter(self.sample_images(1)), None)

    def sample_images(self, limit: int) -> list[Path]:
        """Up to limit JPEG or PNG images of the clean dataset, validation images first, in name order: what
        sample_image tries and the bundle ships for its server's own benchmark."""
        clean = self.clean_dir()
        if clean is None or not clean.is_dir():
            return []
        images = [p for p in sorted(clean.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
        val = [p for p in images if "val" in p.relative_to(clean).parts]
        return (val or images)[:limit]

    def clean_data(self, task: str) -> Path | None:
        """What training is given for the clean copy (its data.yaml; the folder for classify), when it exists."""
        clean = self.clean_dir()
        if clean is None:
            return None
        data = clean if task == "classify" else clean / "data.yaml"
        return data if data.exists() else None

    def intake_ok(self) -> bool:
        """Intake finished and found the dataset usable."""
        return self.model_info.is_file() and bool(self.read_dataset_report().get("ok"))

    def continue_with(self) -> str:
        """The command that takes this run to its selection: `resume` while the search has left no weights,
        `bench` once it has (so each command's hint sends the user straight to the one that helps)."""
        if not self.best_weights.is_file():
            return f"yoloforge resume {self.path}"
        return f"yoloforge bench {self.path}"

    def read_trials(self) -> list[dict[str, Any]]:
        return read_parquet(self.trials)

    def archive_search(self) -> Path | None:
        """Move a finished search's outputs to previous/<time>/ so a new search starts clean."""
        outputs = (self.search, self.trials, self.pareto, self.best)
        if not any(p.exists() for p in outputs):
            return None
        target = self.previous / time.strftime("%Y%m%d-%H%M%S")
        target.mkdir(parents=True, exist_ok=True)
        for p in outputs:
            if p.exists():
                shutil.move(str(p), str(target / p.name))
        return target


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_parquet(path: Path) -> list[dict[str, Any]]:
    """A parquet table's rows, or [] when it is missing or unreadable."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError):
        return []
