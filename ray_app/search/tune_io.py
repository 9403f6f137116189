"""The search's Tune experiments: running and restoring a round, the searcher state Tune saves, search/status.json,
and the trials read back through Tune's own records (ExperimentAnalysis).

Every search round is one Tune experiment under search/ (tune, tune-2, ... when the user asks for more
generations); the GA's state carries over from one round to the next, so a continued search is the same search.
search/status.json says which round is current and whether it finished, so `yoloforge resume` knows whether to
restore it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune
from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir, read_json
from yoloforge.ga.algorithm import GeneticAlgorithm
from yoloforge.ray_app.console import console
from yoloforge.ray_app.search.fidelity import trial_scheduler
from yoloforge.ray_app.search.progress import Progress, TargetStopper
from yoloforge.ray_app.search.ray_searcher import GASearcher
from yoloforge.ray_app.search.trainable import CHECKPOINT_WEIGHTS, COST_KEYS, METRIC_KEYS, TrialContext, train_trial
from yoloforge.ray_app.spec import JobSpec


def read_status(run_dir: Path) -> dict[str, Any]:
    """search/status.json: the rounds (Tune experiments), the current one, and whether it finished."""
    return read_json(RunDir(run_dir).search_status) or {}


def write_status(run_dir: Path, **fields: Any) -> None:
    atomic.write_json(RunDir(run_dir).search_status, {**read_status(run_dir), **fields})


def _searcher_state_file(experiment: Path) -> Path | None:
    """The newest whole one. Tune names each session's file by its start time, so names sort chronologically;
    mtimes would not, since _reconcile_searcher rewrites an older session's file before restoring. Tune copies
    it into the run directory itself, so a full disk can leave the newest cut short."""
    return next((p for p in sorted(experiment.glob("searcher-state-*.pkl"), reverse=True) if _whole(p)), None)


def trial_resources(spec: JobSpec) -> dict[str, float]:
    """What Ray reserves for one trial (a fraction of a GPU packs several trials on one)."""
    return {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}


def concurrent_trials(spec: JobSpec) -> int:
    """How many trials the Ray cluster this driver is connected to runs at once."""
    import ray

    total, wanted = ray.cluster_resources(), trial_resources(spec)
    fits = [total.get("CPU", 0.0) / wanted["cpu"]]
    if wanted["gpu"]:
        fits.append(total.get("GPU", 0.0) / wanted["gpu"])
    return max(1, int(min(fits) + 1e-9))


def _trainable(ctx: TrialContext, spec: JobSpec) -> Any:
    return tune.with_resources(tune.with_parameters(train_trial, ctx=ctx), trial_resources(spec))


def run_round(spec: JobSpec, ctx: TrialContext, searcher: GASearcher, experiment: str) -> Any:
    """One Tune experiment driven by the searcher; returns Tune's ResultGrid."""
    run_dir = spec.run_dir
    write_status(run_dir, experiment=experiment, state="running")
    tuner = tune.Tuner(
        _trainable(ctx, spec),
        # an upper bound for Tune's own bookkeeping; the searcher says FINISHED when the GA stops
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=trial_scheduler(spec), num_samples=searcher.ga.pop_size * max(
                1, (searcher.ga.max_generations or spec.search.generations) - searcher.ga.generation)),
        run_config=tune.RunConfig(
            storage_path=str(RunDir(run_dir).search.resolve()), name=experiment, verbose=0,
            stop=TargetStopper(dict(spec.targets.metrics), searcher.ga.time_left_s()),
            callbacks=[Progress(searcher.ga.pop_size, searcher.ga.max_generations or 0, dict(spec.targets.metrics),
                                spec.search.epochs)],
            failure_config=tune.FailureConfig(max_failures=0)),
    )
    return fit_or_disk_full(tuner.fit, run_dir)


def fit_or_disk_full(fit: Callable[[], Any], run_dir: Path) -> Any:
    """Tune's fit; when it fails, a disk under the run too full for one more trial checkpoint is said as a full disk
    (its OSError reaches the exit-code contract): a trial that died of it ends Tune with "Trials did not complete",
    its OSError left in a log, and what the failed trials wrote is removed by then, so a small write succeeds."""
    try:
        return fit()
    except Exception:
        checkpoints = [p.stat().st_size for p in Path(run_dir).rglob("*.pt") if p.is_file()]
        atomic.check_writable(run_dir, size=max([65536, *checkpoints]))
        raise


def accept_moved_modules() -> None:
    """Tune pickles the searcher's class by its module path into tuner.pkl: a search interrupted before the GA's
    Tune adapter moved from ga/ to ray_app/search/ names it by its old path, so that path still answers."""
    from yoloforge.ray_app.search import ray_searcher

    sys.modules.setdefault("yoloforge.ga.ray_searcher", ray_searcher)


def restore_round(spec: JobSpec, ctx: TrialContext, experiment: str) -> Any:
    path = RunDir(spec.run_dir).search / experiment
    if not tune.Tuner.can_restore(str(path.resolve())):
        raise YoloforgeError(f"no restorable search in {path}", fix="start it again with `yoloforge run`")
    accept_moved_modules()
    _reconcile_searcher(path)
    console.print(f"resuming the search in {path} (finished trials are kept)")
    return tune.Tuner.restore(str(path.resolve()), trainable=_trainable(ctx, spec), resume_errored=False).fit()


# the files Tune restores a round from: its experiment state, the search generator's and the searcher's
STATE_FILES = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl")


def restorable(experiment: Path) -> bool:
    """Tune can restore this round: every kind of its state files is there (after set_aside_unreadable_state,
    all whole). Without one of them Tune's restore starts from nothing."""
    return tune.Tuner.can_restore(str(experiment.resolve())) and all(
        any(experiment.glob(pattern)) for pattern in STATE_FILES)


def _whole(path: Path) -> bool:
    """A state file that was written to its end (a full disk or a kill mid-write cuts one short)."""
    import pickletools

    data = path.read_bytes()
    try:
        if path.name.startswith("search_gen_state-"):  # a pickle despite its name: walk it, build nothing
            for _ in pickletools.genops(data):
                pass
        else:  # Tune's experiment state, and our searcher's (JSON despite its name)
            json.loads(data)
    except Exception:  # pickletools raises ValueError, or others on arbitrary truncations
        return False
    return True


def set_aside_unreadable_state(experiment: Path) -> list[Path]:
    """Tune writes its experiment state in place: a full disk or a kill mid-write leaves the newest file
    truncated, and Tune's restore then starts from nothing. Unreadable state files are moved to
    `unreadable/` (kept, never deleted), so Tune and the searcher restore from the last whole ones."""
    moved = []
    for path in sorted(p for pattern in STATE_FILES for p in experiment.glob(pattern)):
        if not _whole(path):
            aside = experiment / "unreadable" / path.name
            aside.parent.mkdir(exist_ok=True)
            path.rename(aside)
            moved.append(aside)
    return moved


def _reconcile_searcher(experiment: Path) -> None:
    """Tell the saved searcher what Tune recorded after the searcher's last save (a driver killed between the
    two): finished and failed trials are settled, so the generation completes; unfinished ones run again."""
    state_file = _searcher_state_file(experiment)
    if state_file is None:
        return
    searcher = load_searcher(experiment.parent.parent, experiment.name)
    if searcher is None:
        return
    settled = {tid: (r["metrics"] if r["metrics"].get("final") else None)
               for tid, r in tune_results(experiment).items() if r["metrics"].get("final") or r["error"]}
    searcher.complete_pending(settled, only_known=True)
    searcher.save(str(state_file))


def load_searcher(run_dir: Path, experiment: str) -> GASearcher | None:
    """The searcher as Tune last saved it in that round's experiment folder."""
    path = _searcher_state_file(RunDir(run_dir).search / experiment)
    if path is None:
        return None
    state = json.loads(path.read_text())
    searcher = GASearcher(GeneticAlgorithm.from_state(state["ga"]), [tuple(o) for o in state["objectives"]])
    searcher.set_state(state)
    return searcher


def tune_results(experiment: Path) -> dict[str, dict[str, Any]]:
    """trial id -> {config, metrics (the last report), error (its last line)} for every started trial, as Tune
    recorded them (ExperimentAnalysis over the experiment's state), including trials that failed before their
    first report. Empty when Tune has not saved the experiment's state yet."""
    import logging

    from ray.tune import ExperimentAnalysis

    # a trial that failed before its first report has no metrics file: ours says so per trial, not Tune's warning
    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        analysis = ExperimentAnalysis(str(experiment.resolve()))
    except (ValueError, FileNotFoundError, OSError):
        return {}
    finally:
        quiet.setLevel(level)
    out = {}
    for trial in analysis.trials:
        metrics = dict(trial.run_metadata.last_result or {})
        # the copy in the run directory: Tune's `error_file` points into the Ray session that ran the trial,
        # gone once it ended (and asking for it needs a running Ray)
        error_name = trial.run_metadata.error_filename
        error_file = Path(trial.path) / error_name if error_name and trial.path else None
        error_lines = ([ln for ln in error_file.read_text().splitlines() if ln.strip()]
                       if error_file is not None and error_file.is_file() else [])
        if trial.status == "ERROR" and not error_lines:
            error_lines = ["the trial failed (Tune recorded no message)"]
        out[trial.trial_id] = {"config": dict(trial.config), "metrics": metrics,
                               "error": error_lines[-1].strip()[:500] if error_lines else None,
                               "checkpoint": _checkpoint(trial)}
    return out


def _checkpoint(trial: Any) -> Path | None:
    """The folder of the trial's last checkpoint, under the experiment's folder. The trial persists it before it
    reports its final result; a target met by that result stops the experiment before Tune registers it, so the
    trial's folder is looked at when Tune's record has none."""
    if trial.checkpoint is not None:
        return Path(trial.checkpoint.path)
    saved = sorted(Path(trial.path).glob("checkpoint_*")) if trial.path else []
    return saved[-1] if saved else None


def collect_trials(run_dir: Path, task: str) -> list[dict[str, Any]]:
    """One row per trial of every round: Tune's records of what ran, the searcher's of where it sat in the GA.

    Tune is the source of truth for outcomes: a trial stopped when the target was met never reaches the
    searcher, but its results are in Tune's experiment folder.
    """
    rows: list[dict[str, Any]] = []
    run = RunDir(run_dir)
    for experiment in read_status(run_dir).get("rounds", []):
        searcher = load_searcher(run_dir, experiment)
        placed = searcher.placements() if searcher else {}
        for trial_id, res in tune_results(run.search / experiment).items():
            metrics = res["metrics"]
            if res["error"]:
                status = "error"
            elif metrics.get("final"):
                status = "ok"
            else:
                status = "stopped early"  # its last report was an epoch's, not the finished trial's
            generation, index = placed.get(trial_id, (None, None))
            row: dict[str, Any] = {"trial_id": trial_id, "round": experiment, "generation": generation,
                                   "index": index, "status": status, "error": res["error"]}
            row.update({f"hp_{k}": v for k, v in res["config"].items()})
            for name in [*METRIC_KEYS[task].values(), "fitness", *COST_KEYS]:
                value = metrics.get(name)
                row[name] = float(value) if isinstance(value, int | float) else None
            weights = res["checkpoint"] / CHECKPOINT_WEIGHTS if res["checkpoint"] is not None else None
            row["best_pt"] = run.record(weights) if status == "ok" and weights is not None and weights.is_file() \
                else None
            for name in ("epoch", "epochs"):  # how far it got (a trial stopped early says where)
                row[name] = int(metrics[name]) if isinstance(metrics.get(name), int | float) else None
            rows.append(row)
    return sorted(rows, key=lambda r: (r["round"], r["generation"] if r["generation"] is not None else 1 << 30,
                                       r["index"] or 0))

