"""A job run from Python, and a run directory's results as typed objects (`yoloforge.run`, `yoloforge.open_run`).

The same pipeline as `yoloforge run`, without the CLI's questions: a problem with the job or its data raises
yoloforge.YoloforgeError (its message says what, where and how to fix it) instead of printing it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoloforge.core.rundir import RunDir, read_json
from yoloforge.engines.selection import Selection as EngineSelection
from yoloforge.ray_app.search.trainable import METRIC_KEYS
from yoloforge.ray_app.spec import JobSpec, load_job, load_run_job

__all__ = ["Delivery", "EngineChoice", "Run", "Selection", "Trial", "load_job", "open_run", "run"]

_METRICS = sorted({name for names in METRIC_KEYS.values() for name in names.values()})


@dataclass(frozen=True)
class Trial:
    """One trial of the search (a row of trials.parquet)."""

    trial_id: str
    generation: int | None  # 0 is the first
    status: str  # ok | error | stopped early
    fitness: float | None
    metrics: dict[str, float]  # mAP50, mAP50-95, ... (top1, top5 for classify)
    hyperparameters: dict[str, Any]
    outcome: str | None  # why it ended, and why it was or was not chosen
    weights: Path | None  # its best.pt, for a finished trial


@dataclass(frozen=True)
class EngineChoice:
    """One measured inference configuration."""

    key: str
    backend: str
    precision: str
    batch: int
    imgsz: int
    device: str
    throughput: float  # images per second, the engine alone
    p99_ms: float
    accuracy: float | None  # mAP50-95 (top1 for classify) on the validation images it was scored on
    model_file: Path | None


@dataclass(frozen=True)
class Selection:
    """What the engines stage chose (selection.json)."""

    met: bool  # a configuration meets every target
    chosen: EngineChoice | None
    closest: EngineChoice | None  # when none meets every target: the closest one, which is served
    promised: float | None
    promised_as: str  # "RPS through the bundle" or "img/s for the engine alone"
    reasoning: list[str]

    @property
    def served(self) -> EngineChoice | None:
        return self.chosen or self.closest


@dataclass(frozen=True)
class Delivery:
    """What the exported bundle's own server delivered under load (delivered.json)."""

    rps: float
    p50_ms: float
    p99_ms: float
    clients: int
    promised: float | None
    ratio: float | None  # rps / promised
    # the server's CPU time per request against the engine's per image (1.00: the server costs nothing beside it)
    cost_factor: float | None = None


class Run:
    """A run directory, read through its files: each property is None (or empty) until its stage has run."""

    def __init__(self, path: str | Path) -> None:
        self.dir = RunDir.open(path)

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def spec(self) -> JobSpec:
        return load_run_job(self.dir)

    @property
    def trials(self) -> list[Trial]:
        return [self._trial(row) for row in self.dir.read_trials()]

    @property
    def best(self) -> Trial | None:
        """The trial whose weights the later stages use (best/metrics.json)."""
        row = read_json(self.dir.best_metrics)
        return None if row is None else self._trial(row)

    @property
    def weights(self) -> Path | None:
        return self.dir.best_weights if self.dir.best_weights.is_file() else None

    @property
    def selection(self) -> Selection | None:
        data = self.dir.read_selection()
        if data is None:
            return None
        value, basis = EngineSelection(data).promise()
        metric = (data.get("targets") or {}).get("metric", "mAP50-95")
        return Selection(met=bool(data.get("met")), chosen=self._choice(data.get("chosen"), metric),
                         closest=self._choice(data.get("closest"), metric), promised=value, promised_as=basis,
                         reasoning=list(data.get("reasoning", [])))

    @property
    def delivery(self) -> Delivery | None:
        data = read_json(self.dir.delivered)
        if data is None:
            return None
        return Delivery(rps=float(data["rps"]), p50_ms=float(data["p50_ms"]), p99_ms=float(data["p99_ms"]),
                        clients=int(data["clients"]), promised=data.get("promised"), ratio=data.get("ratio"),
                        cost_factor=data.get("cost_factor"))

    @property
    def bundle(self) -> Path | None:
        return self.dir.bundle if (self.dir.bundle / "bundle.json").is_file() else None

    def report(self) -> Path:
        """(Re)write report.html and return its path."""
        from yoloforge.ray_app.report import write_report

        return write_report(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _trial(self, row: dict[str, Any]) -> Trial:
        generation = row.get("generation")
        return Trial(trial_id=str(row["trial_id"]), generation=None if generation is None else int(generation),
                     status=str(row["status"]), fitness=row.get("fitness"),
                     metrics={k: float(row[k]) for k in _METRICS if row.get(k) is not None},
                     hyperparameters={k.removeprefix("hp_"): v for k, v in row.items() if k.startswith("hp_")},
                     outcome=row.get("outcome"),
                     weights=self.dir.resolve(row["best_pt"]) if row.get("best_pt") else None)

    def _choice(self, row: dict[str, Any] | None, metric: str) -> EngineChoice | None:
        if row is None:
            return None
        return EngineChoice(key=row["key"], backend=row["backend"], precision=row["precision"],
                            batch=int(row["batch"]), imgsz=int(row["imgsz"]), device=row["device"],
                            throughput=float(row["throughput"]), p99_ms=float(row["p99_ms"]),
                            accuracy=row.get(metric),
                            model_file=self.dir.resolve(row["model_file"]) if row.get("model_file") else None)


def open_run(path: str | Path) -> Run:
    """An existing run directory (runs/<name>)."""
    return Run(path)


def run(job: JobSpec | str | Path, *, until: str = "export", from_stage: str | None = None,
        more_generations: int = 0) -> Run:
    """Run a job (a JobSpec, or the path of a job.yaml) up to and including the stage `until` (intake, search,
    engines, preview or export), as `yoloforge run JOB --yes` does; returns its run directory."""
    from yoloforge.ray_app.pipeline import run_job
    from yoloforge.ray_app.stages.base import SearchChoices

    spec = job if isinstance(job, JobSpec) else load_job(job)
    state = run_job(spec, SearchChoices(interactive=False, more_generations=more_generations), until=until,
                    from_stage=from_stage)
    return Run(state.spec.run_dir)
