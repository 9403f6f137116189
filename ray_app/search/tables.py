"""The search's results: trials.parquet, pareto.parquet, best/, and the table and verdict printed at its end."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml
from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir
from yoloforge.ga.operators import non_dominated_sort
from yoloforge.ray_app.console import console
from yoloforge.ray_app.outcome import meets_targets
from yoloforge.ray_app.search.hyp_file import reproducible_hyp, write_ultralytics_settings
from yoloforge.ray_app.search.trainable import METRIC_KEYS, TRAIN_ARGS
from yoloforge.ray_app.search.tune_io import collect_trials, read_status
from yoloforge.ray_app.search.tune_state import load_searcher
from yoloforge.ray_app.spec import JobSpec


@dataclass
class SearchOutcome:
    stop_reason: str
    target_met: bool
    best: dict[str, Any] | None  # the best trial's row of trials.parquet
    trials: int
    failed: int


def write_tables(run_dir: Path, rows: list[dict[str, Any]]) -> tuple[Path, Path]:
    run = RunDir(run_dir)
    trials_path, pareto_path = run.trials, run.pareto
    table = pa.Table.from_pylist(rows) if rows else pa.table({"trial_id": pa.array([], pa.string())})
    atomic.write_parquet(trials_path, table)
    ok = [r for r in rows if r["status"] == "ok" and r.get("fitness") is not None]
    if ok:
        F = np.array([[-r["fitness"], r.get("latency_ms") or 0.0] for r in ok])
        front = [ok[i] for i in np.flatnonzero(non_dominated_sort(F) == 0)]
        atomic.write_parquet(pareto_path, pa.Table.from_pylist(sorted(front, key=lambda r: -r["fitness"])))
    else:
        atomic.write_parquet(pareto_path, table.slice(0, 0))
    return trials_path, pareto_path


def best_row(rows: list[dict[str, Any]], minimums: dict[str, float]) -> dict[str, Any] | None:
    """Highest fitness among trials meeting every target, else highest fitness overall."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("fitness") is not None and r.get("best_pt")]
    if not ok:
        return None
    meets = [r for r in ok if meets_targets(r, minimums)]
    return max(meets or ok, key=lambda r: r["fitness"])


def trial_outcomes(rows: list[dict[str, Any]], best: dict[str, Any] | None, minimums: dict[str, float],
                   stop_reason: str) -> dict[str, str]:
    """Why each trial ended, and why it was or was not chosen, in words (trials.parquet's outcome column, which
    the console and the report show)."""
    meeting = [r for r in rows if r["status"] == "ok" and minimums and meets_targets(r, minimums)]
    if best is None:
        chosen = ""
    elif meeting:
        chosen = "chosen: the highest fitness of the finished trials that meet every target"
    elif minimums:
        chosen = "chosen: the highest fitness of the finished trials (none meets every target)"
    else:
        chosen = "chosen: the highest fitness of the finished trials"
    if meeting:
        why_stopped = f"when trial {meeting[0]['trial_id']} met the target"
    elif stop_reason == "time_budget":
        why_stopped = "when search.time_budget_min ran out"
    else:
        why_stopped = "when the search was interrupted"
    out = {}
    for r in rows:
        if best is not None and r["trial_id"] == best["trial_id"]:
            out[r["trial_id"]] = chosen
        elif r["status"] == "error":
            out[r["trial_id"]] = f"failed: {r['error'] or 'no message'}"
        elif r["status"] != "ok":
            at = (f" at epoch {int(r['epoch'])} of {int(r['epochs'])}" if r.get("epoch") is not None
                  and r.get("epochs") is not None else "")
            out[r["trial_id"]] = (f"not chosen: stopped{at} {why_stopped}; a trial is chosen only once it finished "
                                  "(its final validation and weights)")
        elif meeting and not meets_targets(r, minimums):
            missed = [f"{k} {r[k]:.3f} < {v:g}" if r.get(k) is not None else f"{k} not measured"
                      for k, v in minimums.items() if not meets_targets(r, {k: v})]
            out[r["trial_id"]] = "not chosen: misses the target (" + ", ".join(missed) + ")"
        else:
            fitness = f"{r['fitness']:.4f}" if r.get("fitness") is not None else "none"
            out[r["trial_id"]] = (f"not chosen: fitness {fitness}, below the chosen's {best['fitness']:.4f}"
                                  if best is not None else "finished")
    return out


def write_best(run_dir: Path, best: dict[str, Any]) -> Path:
    run = RunDir(run_dir)
    run.best.mkdir(parents=True, exist_ok=True)
    weights = run.resolve(best["best_pt"])
    with atomic.replacing(run.best_weights) as tmp:
        shutil.copy2(weights, tmp)
    atomic.write_json(run.best_metrics, best, default=str)
    args = weights.parent / TRAIN_ARGS  # the trial's own, beside its weights in its checkpoint
    if args.is_file():
        write_ultralytics_settings(run.best_ultralytics_config)
        atomic.write_text(run.best_hyp, reproducible_hyp(yaml.safe_load(args.read_text()), run.best_hyp,
                                                         run.best_ultralytics_config))
    return run.best_weights


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
    minimums = dict(spec.targets.metrics)
    best = best_row(rows, minimums)
    rounds = read_status(run_dir).get("rounds", [])
    searcher = load_searcher(run_dir, rounds[-1]) if rounds else None
    if searcher is not None:
        atomic.write_text(RunDir(run_dir).ga_state, json.dumps(searcher.ga.state_dict()))
    stop = (searcher.ga.stop_reason() if searcher else None) or "stopped"
    outcomes = trial_outcomes(rows, best, minimums, stop)
    for row in rows:
        row["outcome"] = outcomes[row["trial_id"]]
    trials_path, _ = write_tables(run_dir, rows)
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
        console.print(f"  trial {r['trial_id']} (gen {r['generation'] + 1}) {r['outcome']}", markup=False)
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

