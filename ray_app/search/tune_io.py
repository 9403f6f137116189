"""The search's Tune experiments: running and restoring a round, search/status.json, and one row per trial of
every round (Tune's records of what ran, the searcher's of where it sat in the GA).

Every search round is one Tune experiment under search/ (tune, tune-2, ... when the user asks for more
generations); the GA's state carries over from one round to the next, so a continued search is the same search.
search/status.json says which round is current and whether it finished, so `yoloforge resume` knows whether to
restore it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune
from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir, read_json
from yoloforge.ray_app.console import console
from yoloforge.ray_app.search.fidelity import trial_scheduler
from yoloforge.ray_app.search.progress import Progress, TargetStopper
from yoloforge.ray_app.search.ray_searcher import GASearcher
from yoloforge.ray_app.search.trainable import CHECKPOINT_WEIGHTS, COST_KEYS, METRIC_KEYS, TrialContext, train_trial
from yoloforge.ray_app.search.tune_state import load_searcher, reconcile, tune_results
from yoloforge.ray_app.spec import JobSpec


def read_status(run_dir: Path) -> dict[str, Any]:
    """search/status.json: the rounds (Tune experiments), the current one, and whether it finished."""
    return read_json(RunDir(run_dir).search_status) or {}


def write_status(run_dir: Path, **fields: Any) -> None:
    atomic.write_json(RunDir(run_dir).search_status, {**read_status(run_dir), **fields})


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
    # no more trials than run at once: Tune would otherwise queue one ahead, its config chosen before the result
    # that frees its slot (the searcher asks each member on every result so far)
    searcher.set_max_concurrency(concurrent_trials(spec))
    tuner = tune.Tuner(
        _trainable(ctx, spec),
        # reuse_actors: a trial's process trains the next trial too (every trial asks the same resources), so each
        # trial after the first skips starting Python and importing torch and Ultralytics (about 4 s on 2 cores);
        # num_samples: an upper bound for Tune's own bookkeeping; the searcher says FINISHED when the GA stops
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=trial_scheduler(spec), reuse_actors=True,
            num_samples=searcher.ga.pop_size * max(
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
    reconcile(path)
    console.print(f"resuming the search in {path} (finished trials are kept)")
    return tune.Tuner.restore(str(path.resolve()), trainable=_trainable(ctx, spec), resume_errored=False).fit()


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

