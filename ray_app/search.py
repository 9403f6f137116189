"""Stage 2: the hyperparameter search on Ray Tune, driven by ga/ (DESIGN.md: runs/<name>/search/...).

Every search round is one Tune experiment under search/ (tune, tune-2, ... when the user asks for more
generations); the GA's state carries over from one round to the next, so a continued search is the same search.
search/status.json says which round is current and whether it finished, so `yoloforge resume` knows whether to
restore it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from ray import tune
from yoloforge.core.errors import YoloforgeError
from yoloforge.ga.algorithm import GeneticAlgorithm
from yoloforge.ga.operators import non_dominated_sort
from yoloforge.ga.ray_searcher import GASearcher
from yoloforge.ga.space import (
    ULTRALYTICS_DEFAULTS,
    SearchSpace,
    auto_lr0,
    for_training_length,
    is_short_training,
    short_training_starts,
)
from yoloforge.ray_app.console import console
from yoloforge.ray_app.spec import JobSpec
from yoloforge.ray_app.trainable import COST_KEYS, METRIC_KEYS, TrialContext, shared_latency_ms, train_trial
from yoloforge.ray_app.trainer_rules import FINE_TUNE_LR0_CEILING, FINE_TUNE_STEP, for_fine_tuning, without_inert_genes


@dataclass
class SearchOutcome:
    stop_reason: str
    target_met: bool
    best: dict[str, Any] | None  # the best trial's row of trials.parquet
    trials: int
    failed: int


@contextmanager
def ray_session(address: str | None, dashboard: bool = True) -> Iterator[None]:
    """Join the given cluster or start a local one; shut down only what this process started."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address is None:
        # a laptop search needs no network: Ray binds to loopback (a cluster is joined through its address)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        context = ray.init(address=address, include_dashboard=dashboard if address is None else None,
                           log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise YoloforgeError(f"cannot connect to the Ray cluster at {address}: {err}",
                             fix="check resources.address (ray://host:10001 or auto) and that the cluster runs") \
            from None
    url = getattr(context, "dashboard_url", None)
    if url:
        console.print(f"Ray dashboard: http://{url}")
    try:
        yield
    finally:
        ray.shutdown()


def _dataset_report(run_dir: Path) -> dict[str, Any]:
    report = run_dir / "dataset_report.json"
    return json.loads(report.read_text()) if report.is_file() else {}


def dataset_classes(run_dir: Path) -> int | None:
    return len(_dataset_report(run_dir).get("names") or []) or None


def dataset_train_images(run_dir: Path) -> int | None:
    """Images in the clean copy's training split, as intake counted them."""
    return ((_dataset_report(run_dir).get("splits") or {}).get("train") or {}).get("images_clean") or None


def _initial_individuals(spec: JobSpec, nc: int | None = None, space: SearchSpace | None = None,
                         task: str = "detect", short_training: bool = False) -> list[dict[str, Any]]:
    """The job's own starting points, then Ultralytics' defaults (and for a short training their screening
    variants, see short_training_starts), each kept only if it fits the space and differs from those before."""
    space = space or spec.search.search_space()
    fitted: list[dict[str, Any]] = []
    defaults = {**ULTRALYTICS_DEFAULTS, **({"lr0": auto_lr0(nc)} if nc else {})}
    variants = short_training_starts(defaults, task) if short_training else []
    for candidate in [*spec.search.initial, defaults, *variants]:
        config = {}
        for gene in space.genes:
            value = candidate.get(gene.name)
            if value is None:
                if gene.name not in ULTRALYTICS_DEFAULTS:
                    break
                value = ULTRALYTICS_DEFAULTS[gene.name]
            if gene.kind == "cat" and value not in gene.choices:
                break
            if gene.kind != "cat" and not gene.low <= value <= gene.high:
                break
            config[gene.name] = value
        else:
            if config not in fitted:  # a variant of a fixed gene is the defaults again
                fitted.append(config)
    return fitted


def build_searcher(spec: JobSpec, task: str, nc: int | None = None, n_train: int | None = None, *,
                   pretrained: bool = False) -> GASearcher:
    """The GA for this job. pretrained (a .pt checkpoint) fine-tunes: the first generation is the defaults and
    mutants near them, lr0 moves up by at most FINE_TUNE_LR0_CEILING; from scratch (a .yaml) a short training
    starts from the screening design (short_training_starts) beside the defaults."""
    s = spec.search
    n_obj = 2 if s.mode == "pareto" else 1
    space = s.search_space()
    iterations = s.epochs * math.ceil(n_train / s.batch) if n_train else None
    # the user's own optimizer choices (in the space or a starting point) are kept as given
    if "optimizer" not in s.space and all(c.get("optimizer") != "SGD" for c in s.initial):
        space = for_training_length(space, iterations)
    space, inert = without_inert_genes(space, task, s.epochs, ULTRALYTICS_DEFAULTS)
    for reason in sorted(set(inert.values())):
        names = ", ".join(n for n, r in inert.items() if r == reason)
        console.print(f"not searched: {names} ({reason})", markup=False)
    if pretrained and "lr0" not in s.space and not any("lr0" in c for c in s.initial):
        space = for_fine_tuning(space, auto_lr0(nc) if nc else ULTRALYTICS_DEFAULTS["lr0"])
    if pretrained:
        console.print("fine-tuning a pretrained checkpoint: the first generation starts at Ultralytics' defaults and "
                      f"mutants near them; lr0 at most {FINE_TUNE_LR0_CEILING:g}x its default", markup=False)
    ga = GeneticAlgorithm(space, pop_size=s.population, n_obj=n_obj, seed=s.seed,
                          max_generations=s.generations, stagnation=s.stagnation,
                          time_budget_s=s.time_budget_min * 60 if s.time_budget_min else None,
                          initial=_initial_individuals(spec, nc, space, task,
                                                       is_short_training(iterations) and not pretrained),
                          **({"warm_fraction": 1.0, "warm_sigma": FINE_TUNE_STEP} if pretrained else {}))
    objectives = [("fitness", "max")] + ([("latency_ms", "min")] if n_obj == 2 else [])
    return GASearcher(ga, objectives, minimums=dict(spec.targets.metrics))


def trial_context(spec: JobSpec, task: str, data: str, model: str) -> TrialContext:
    space = spec.search.search_space()
    sizes = next((list(g.choices) for g in space.genes if g.name == "imgsz"), [space.fixed.get("imgsz",
                                                                                               spec.search.imgsz)])
    # CPU trials share one latency per input size, measured here before any trial trains; GPU trials measure
    # on their own device
    latency = shared_latency_ms(model, task, [int(s) for s in sizes]) if not spec.resources.gpu else {}
    return TrialContext(model=model, data=data, task=task, epochs=spec.search.epochs, imgsz=spec.search.imgsz,
                        batch=spec.search.batch, seed=spec.search.seed, fitness_weights=spec.fitness_weights(task),
                        penalties=dict(spec.search.compute_penalty), fixed=dict(space.fixed), latency_ms=latency)


def meets_targets(metrics: dict[str, Any], minimums: dict[str, float]) -> bool:
    """Every minimum met by the metrics (a missing metric misses its target)."""
    return all((m := metrics.get(k)) is not None and m >= v for k, v in minimums.items())


# --- Tune plumbing -------------------------------------------------------------------------------------


class TargetStopper(tune.Stopper):
    """Ends the whole experiment as soon as a finished trial meets every target, or the time is up."""

    def __init__(self, minimums: dict[str, float], time_budget_s: float | None) -> None:
        self.minimums, self.time_budget_s = minimums, time_budget_s
        self.met = False
        self._start: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_start": None}  # a restored run gets the budget's remainder from the GA

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if result.get("final") and self.minimums and meets_targets(result, self.minimums):
            self.met = True
        return False

    def stop_all(self) -> bool:
        self._start = self._start or time.monotonic()
        over_time = self.time_budget_s is not None and time.monotonic() - self._start > self.time_budget_s
        return self.met or over_time


class Progress(tune.Callback):
    """One line per finished trial: generation, counts, this trial, the best so far against the target. In a
    terminal, also a live table of the running trials: epoch, latest accuracy, time left."""

    def __init__(self, population: int, generations: int, target: dict[str, float], epochs: int = 0) -> None:
        self.population, self.generations, self.target, self.epochs = population, generations, target, epochs
        self.done = self.failed = 0
        self.best = -math.inf
        self.durations: list[float] = []
        self.started: dict[str, float] = {}
        self.running: dict[str, dict[str, Any]] = {}  # trial id -> its latest epoch report
        self.reported: set[str] = set()  # trials whose final line is printed
        self.live: Any = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.monotonic()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("final"):  # a met target ends the experiment before Tune calls on_trial_complete
            self._complete(trials, trial, result)
            return
        if not console.is_terminal:
            return
        self.running[trial.trial_id] = result
        if self.live is None:
            from rich.live import Live

            self.live = Live(self._table(), console=console, transient=True, auto_refresh=False)
            self.live.start()
        self.live.update(self._table(), refresh=True)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title="running trials", title_justify="left", box=None, pad_edge=False)
        for column in ("trial", "epoch", "mAP50 / top1", "fitness", "time left"):
            table.add_column(column, justify="left" if column == "trial" else "right")
        for trial_id, r in sorted(self.running.items()):
            accuracy = next((r[k] for k in ("mAP50", "top1") if r.get(k) is not None), None)
            table.add_row(trial_id, f"{r.get('epoch', 0)}/{r.get('epochs') or self.epochs or '?'}",
                          "-" if accuracy is None else f"{accuracy:.3f}", f"{r.get('fitness') or 0:.4f}",
                          f"{(r.get('eta_s') or 0) / 60:.1f} min")
        return table

    def _finished(self, trial: Any) -> None:
        self.running.pop(trial.trial_id, None)
        if self.live is not None:
            self.live.update(self._table(), refresh=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _line(self, trials: list, trial: Any, text: str) -> None:
        running = sum(t.status == "RUNNING" and t.trial_id not in self.reported for t in trials)
        total = self.population * self.generations
        if trial.trial_id in self.started:
            self.durations.append(time.monotonic() - self.started.pop(trial.trial_id))
        remaining = max(0, total - self.done - self.failed)
        eta = np.mean(self.durations) * remaining / max(1, running or 1) if self.durations else 0
        gen = (self.done + self.failed - 1) // self.population + 1
        target = ", ".join(f"{k} >= {v}" for k, v in self.target.items()) or "none"
        console.print(f"gen {gen}/{self.generations} · {self.done + self.failed}/{total} trials "
                      f"({running} running, {self.failed} failed) · {text} · best fitness {self.best:.4f} · "
                      f"target {target} · ETA {eta / 60:.1f} min", markup=False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._complete(trials, trial, trial.last_result or {})

    def _complete(self, trials: list, trial: Any, result: dict) -> None:
        if trial.trial_id in self.reported:
            return
        self.reported.add(trial.trial_id)
        self._finished(trial)
        self.done += 1
        if "fitness" in result:
            self.best = max(self.best, result["fitness"])
        shown = {k: result.get(k) for k in ("mAP50", "mAP50-95", "top1") if result.get(k) is not None}
        self._line(trials, trial, "trial " + " ".join(f"{k} {v:.3f}" for k, v in shown.items()))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial)
        self.failed += 1
        self._line(trials, trial, f"trial {trial.trial_id} failed")


def _status_path(run_dir: Path) -> Path:
    return run_dir / "search" / "status.json"


def read_status(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads(_status_path(run_dir).read_text())
    except (OSError, ValueError):
        return {}


def _write_status(run_dir: Path, **fields: Any) -> None:
    path = _status_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**read_status(run_dir), **fields}, indent=2))


def _searcher_state_file(experiment: Path) -> Path | None:
    # Tune names each session's file by its start time, so names sort chronologically; mtimes would not,
    # since _reconcile_searcher rewrites an older session's file before restoring
    files = sorted(experiment.glob("searcher-state-*.pkl"))
    return files[-1] if files else None


def _trainable(ctx: TrialContext, spec: JobSpec) -> Any:
    return tune.with_resources(tune.with_parameters(train_trial, ctx=ctx),
                               {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def run_round(spec: JobSpec, ctx: TrialContext, searcher: GASearcher, experiment: str) -> Any:
    """One Tune experiment driven by the searcher; returns Tune's ResultGrid."""
    run_dir = spec.run_dir
    _write_status(run_dir, experiment=experiment, state="running")
    tuner = tune.Tuner(
        _trainable(ctx, spec),
        # an upper bound for Tune's own bookkeeping; the searcher says FINISHED when the GA stops
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=spec.search.population * max(
            1, (searcher.ga.max_generations or spec.search.generations) - searcher.ga.generation)),
        run_config=tune.RunConfig(
            storage_path=str((run_dir / "search").resolve()), name=experiment, verbose=0,
            stop=TargetStopper(dict(spec.targets.metrics),
                               spec.search.time_budget_min * 60 if spec.search.time_budget_min else None),
            callbacks=[Progress(spec.search.population, searcher.ga.max_generations or 0, dict(spec.targets.metrics),
                                spec.search.epochs)],
            failure_config=tune.FailureConfig(max_failures=0)),
    )
    return tuner.fit()


def restore_round(spec: JobSpec, ctx: TrialContext, experiment: str) -> Any:
    path = spec.run_dir / "search" / experiment
    if not tune.Tuner.can_restore(str(path.resolve())):
        raise YoloforgeError(f"no restorable search in {path}", fix="start it again with `yoloforge run`")
    _reconcile_searcher(path)
    console.print(f"resuming the search in {path} (finished trials are kept)")
    return tune.Tuner.restore(str(path.resolve()), trainable=_trainable(ctx, spec), resume_errored=False).fit()


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
    path = _searcher_state_file(run_dir / "search" / experiment)
    if path is None:
        return None
    state = json.loads(path.read_text())
    searcher = GASearcher(GeneticAlgorithm.from_state(state["ga"]), [tuple(o) for o in state["objectives"]])
    searcher.set_state(state)
    return searcher


# --- outputs ---------------------------------------------------------------------------------------------


_TRIAL_ID = re.compile(r"_([0-9a-f]{8})_\d+_")


def tune_results(experiment: Path) -> dict[str, dict[str, Any]]:
    """trial id -> {config, metrics (the last report), error (its last line)} for every started trial.

    Read from Tune's trial folders (params.json, result.json, error.txt), which also hold the trials that
    failed before their first report.
    """
    out = {}
    for params in sorted(experiment.glob("*/params.json")):
        folder = params.parent
        lines = (folder / "result.json").read_text().splitlines() if (folder / "result.json").exists() else []
        metrics = json.loads(lines[-1]) if lines else {}
        match = _TRIAL_ID.search(folder.name)
        trial_id = metrics.get("trial_id") or (match.group(1) if match else folder.name)
        error_file = folder / "error.txt"
        error_lines = [ln for ln in error_file.read_text().splitlines() if ln.strip()] if error_file.exists() else []
        out[trial_id] = {"config": json.loads(params.read_text()), "metrics": metrics,
                         "error": error_lines[-1].strip()[:500] if error_lines else None}
    return out


def collect_trials(run_dir: Path, task: str) -> list[dict[str, Any]]:
    """One row per trial of every round: Tune's records of what ran, the searcher's of where it sat in the GA.

    Tune is the source of truth for outcomes: a trial stopped when the target was met never reaches the
    searcher, but its results are in Tune's experiment folder.
    """
    rows: list[dict[str, Any]] = []
    for experiment in read_status(run_dir).get("rounds", []):
        searcher = load_searcher(run_dir, experiment)
        placed = searcher.placements() if searcher else {}
        for trial_id, res in tune_results(run_dir / "search" / experiment).items():
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
            row["best_pt"] = metrics.get("best_pt") if status == "ok" else None
            rows.append(row)
    return sorted(rows, key=lambda r: (r["round"], r["generation"] if r["generation"] is not None else 1 << 30,
                                       r["index"] or 0))


def write_tables(run_dir: Path, rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    trials_path, pareto_path = run_dir / "trials.parquet", run_dir / "pareto.parquet"
    table = pa.Table.from_pylist(rows) if rows else pa.table({"trial_id": pa.array([], pa.string())})
    pq.write_table(table, trials_path)
    ok = [r for r in rows if r["status"] == "ok" and r.get("fitness") is not None]
    if ok:
        F = np.array([[-r["fitness"], r.get("latency_ms") or 0.0] for r in ok])
        front = [ok[i] for i in np.flatnonzero(non_dominated_sort(F) == 0)]
        pq.write_table(pa.Table.from_pylist(sorted(front, key=lambda r: -r["fitness"])), pareto_path)
    else:
        pq.write_table(table.slice(0, 0), pareto_path)
    return trials_path, pareto_path


def best_row(rows: list[dict[str, Any]], minimums: dict[str, float]) -> dict[str, Any] | None:
    """Highest fitness among trials meeting every target, else highest fitness overall."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("fitness") is not None and r.get("best_pt")]
    if not ok:
        return None
    meets = [r for r in ok if meets_targets(r, minimums)]
    return max(meets or ok, key=lambda r: r["fitness"])


def write_best(run_dir: Path, best: dict[str, Any]) -> Path:
    folder = run_dir / "best"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(best["best_pt"], folder / "best.pt")
    (folder / "metrics.json").write_text(json.dumps(best, indent=2, default=str))
    return folder / "best.pt"


# --- the stage ---------------------------------------------------------------------------------------------


@dataclass
class SearchChoices:
    """How the user answers the question after a search; flags make it non-interactive."""

    interactive: bool = False
    more_generations: int = 0  # without a terminal: continue this many generations once if the target is unmet


def _suggestions(spec: JobSpec, outcome: SearchOutcome, model: str) -> list[str]:
    tips = []
    if spec.search.epochs < 50:
        tips.append(f"more epochs per trial (search.epochs is {spec.search.epochs}; small models need 50-300)")
    if outcome.stop_reason in ("max_generations", "time_budget"):
        tips.append("more generations or time (search.generations / search.time_budget_min)")
    stem = Path(model).stem
    if stem[-1:] in ("n", "s") or stem.endswith(("n-seg", "n-cls", "s-seg", "s-cls")):
        tips.append("a larger model (e.g. the s or m variant of the same family)")
    tips.append("more or better labelled training data (see dataset_report.json for per-class counts)")
    if spec.search.imgsz < 640:
        tips.append(f"a larger image size (search.imgsz is {spec.search.imgsz})")
    return tips


def summarize(spec: JobSpec, task: str, model: str) -> SearchOutcome:
    """Write trials.parquet, pareto.parquet and best/, print accuracy beside compute, and the verdict."""
    from rich.table import Table

    run_dir = spec.run_dir
    rows = collect_trials(run_dir, task)
    trials_path, _ = write_tables(run_dir, rows)
    minimums = dict(spec.targets.metrics)
    best = best_row(rows, minimums)
    rounds = read_status(run_dir).get("rounds", [])
    searcher = load_searcher(run_dir, rounds[-1]) if rounds else None
    if searcher is not None:
        (run_dir / "search" / "ga_state.json").write_text(json.dumps(searcher.ga.state_dict()))
    stop = (searcher.ga.stop_reason() if searcher else None) or "stopped"
    failed = sum(r["status"] == "error" for r in rows)
    stopped = sum(r["status"] not in ("ok", "error") for r in rows)  # ended by a met target or the time budget
    met = best is not None and meets_targets(best, minimums) and bool(minimums)
    outcome = SearchOutcome(stop_reason="target" if met else stop, target_met=met, best=best, trials=len(rows),
                            failed=failed)
    metric_names = list(METRIC_KEYS[task].values())
    table = Table(title=f"Best trials of {len(rows)} ({failed} failed"
                        + (f", {stopped} stopped early" if stopped else "") + "): accuracy beside compute")
    for col in ("trial", "gen", "fitness", *metric_names, "latency ms", "params M", "GFLOPs", "train s"):
        table.add_column(col, justify="right")
    ok = sorted((r for r in rows if r["status"] == "ok" and r["fitness"] is not None), key=lambda r: -r["fitness"])
    for r in ok[:8]:
        table.add_row(r["trial_id"], str(r["generation"] + 1), f"{r['fitness']:.4f}",
                      *(f"{r[m]:.3f}" if r.get(m) is not None else "-" for m in metric_names),
                      *(f"{r[c]:.1f}" if r.get(c) is not None else "-" for c in
                        ("latency_ms", "params_m", "gflops", "train_time_s")))
    console.print(table)
    for r in (r for r in rows if r["status"] != "ok"):
        console.print(f"  trial {r['trial_id']} (gen {r['generation'] + 1}) {r['status']}: {r['error'] or '-'}",
                      markup=False)
    if best is None:
        raise YoloforgeError(f"every one of the {len(rows)} trials failed; see the errors above and {trials_path}",
                             fix="check the dataset and the resources (memory per trial), then `yoloforge resume`")
    best_pt = write_best(run_dir, best)
    shown = ", ".join(f"{k} {best.get(k):.3f}" for k in (minimums or {metric_names[1]: 0}) if best.get(k) is not None)
    if met:
        console.print(f"[green]Target met[/green] by trial {best['trial_id']}: {shown}. Weights: {best_pt}")
    elif minimums:
        wanted = ", ".join(f"{k} >= {v}" for k, v in minimums.items())
        console.print(f"[yellow]The target ({wanted}) was not reached[/yellow] within the budget ({len(rows)} trials, "
                      f"stopped by {stop}). Best: {shown} (trial {best['trial_id']}, weights {best_pt}).")
        console.print("What might help: " + "; ".join(_suggestions(spec, outcome, model)) + ".")
    else:
        console.print(f"Best trial {best['trial_id']}: {shown}. Weights: {best_pt}")
    return outcome


def _ask(outcome: SearchOutcome, spec: JobSpec) -> tuple[str, Any] | None:
    from rich.prompt import FloatPrompt, IntPrompt, Prompt

    if outcome.target_met:  # more generations would stop at once: the target must move first
        choice = Prompt.ask("Accept this result, or change the [target] (then search on)?",
                            choices=["accept", "target"], default="accept", console=console)
    else:
        choice = Prompt.ask("Accept this result, search [more] generations, or change the [target]?",
                            choices=["accept", "more", "target"], default="accept", console=console)
    if choice == "more":
        return "more", IntPrompt.ask("How many more generations", default=2, console=console)
    if choice == "target":
        names = list(spec.targets.metrics) or ["mAP50-95"]
        return "target", {n: FloatPrompt.ask(f"New target {n}", default=spec.targets.metrics.get(n, 0.5),
                                             console=console) for n in names}
    return None


def _mark_done_or_interrupted(run_dir: Path, minimums: dict[str, float]) -> None:
    """Tune returns normally after Ctrl-C; only a round whose GA stopped, or whose target was met, is done."""
    experiment = read_status(run_dir)["experiment"]
    searcher = load_searcher(run_dir, experiment)
    finals = [r["metrics"] for r in tune_results(run_dir / "search" / experiment).values()
              if r["metrics"].get("final")]
    met = bool(minimums) and any(meets_targets(m, minimums) for m in finals)
    if met or (searcher is not None and searcher.ga.stop_reason()):
        _write_status(run_dir, state="done")
        return
    console.print(f"[yellow]The search was interrupted.[/yellow] Finished trials are kept; continue with "
                  f"`yoloforge resume {run_dir}`")
    raise KeyboardInterrupt


def stage_search(spec: JobSpec, model: str, data: str, task: str,
                 choices: SearchChoices | None = None) -> tuple[JobSpec, SearchOutcome]:
    """Run (or resume, or continue) the search; returns the spec with any target the user changed."""
    from yoloforge.ray_app.spec import dump_job, parse_job

    choices = choices or SearchChoices()
    run_dir = spec.run_dir
    console.rule("[bold]2 search[/bold]")
    status = read_status(run_dir)
    with ray_session(spec.resources.address, spec.resources.dashboard):
        ctx = trial_context(spec, task, data, model)
        experiment = status.get("experiment")
        restorable = bool(experiment) and tune.Tuner.can_restore(str((run_dir / "search" / experiment).resolve()))
        if status.get("state") == "running" and restorable:
            restore_round(spec, ctx, experiment)
        elif status.get("state") != "done":  # new, or killed before Tune wrote its first checkpoint
            console.print(f"{spec.search.population} trials per generation, up to {spec.search.generations} "
                          f"generations, {spec.search.epochs} epochs each, {spec.resources.cpu} CPU / "
                          f"{spec.resources.gpu} GPU per trial")
            shutil.rmtree(run_dir / "search" / "tune", ignore_errors=True)
            _write_status(run_dir, rounds=["tune"])
            searcher = build_searcher(spec, task, dataset_classes(run_dir), dataset_train_images(run_dir),
                                      pretrained=Path(model).suffix == ".pt")
            run_round(spec, ctx, searcher, "tune")
        _mark_done_or_interrupted(run_dir, dict(spec.targets.metrics))
        continued = 0
        while True:
            outcome = summarize(spec, task, model)
            if choices.interactive:
                decision = _ask(outcome, spec)
            elif not outcome.target_met and choices.more_generations and not continued:
                decision = ("more", choices.more_generations)
            else:
                decision = None
            if decision is None:
                return spec, outcome
            kind, value = decision
            if kind == "target":
                spec = parse_job({**spec.model_dump(mode="json"),
                                  "targets": {**spec.targets.model_dump(mode="json"), "metrics": value}},
                                 str(run_dir / "job.yaml"))
                dump_job(spec, run_dir / "job.yaml")
                continue
            rounds = read_status(run_dir)["rounds"]
            searcher = load_searcher(run_dir, rounds[-1])
            if searcher is None:
                raise YoloforgeError("the previous round left no searcher state to continue from",
                                     where=str(run_dir / "search"))
            searcher.complete_pending({tid: (r["metrics"] if r["metrics"].get("final") else None)
                                       for tid, r in tune_results(run_dir / "search" / rounds[-1]).items()})
            searcher.set_targets(dict(spec.targets.metrics))
            searcher.ga.max_generations = searcher.ga.generation + int(value)
            searcher.ga.stagnation = None  # the user asked for these generations explicitly
            experiment = f"tune-{len(rounds) + 1}"
            _write_status(run_dir, rounds=[*rounds, experiment])
            console.print(f"continuing for {value} more generation(s) as {experiment}")
            run_round(spec, ctx, searcher, experiment)
            _mark_done_or_interrupted(run_dir, dict(spec.targets.metrics))
            continued += 1
