"""Stage 2: the hyperparameter search on Ray Tune, driven by ga/ (its files: runs/<name>/search/...); its parts
are in ray_app/search/. After a search the user may accept it, search more generations, or change the target."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir
from yoloforge.engines.edge import EDGE_DEVICES
from yoloforge.ray_app.console import console
from yoloforge.ray_app.outcome import meets_targets
from yoloforge.ray_app.ray_session import ray_session
from yoloforge.ray_app.search.fidelity import rungs
from yoloforge.ray_app.search.hyp_file import reproduce_command
from yoloforge.ray_app.search.plan import plan_search
from yoloforge.ray_app.search.seeding import (
    build_searcher,
    dataset_classes,
    dataset_train_images,
    trial_context,
    trial_estimate_s,
)
from yoloforge.ray_app.search.tables import SearchOutcome, summarize
from yoloforge.ray_app.search.tune_io import concurrent_trials, read_status, restore_round, run_round, write_status
from yoloforge.ray_app.search.tune_state import load_searcher, restorable, set_aside_unreadable_state, tune_results
from yoloforge.ray_app.spec import JobSpec, dump_job, parse_job
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict, digest, tree_digest


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


def _mark_done_or_interrupted(run: RunDir, minimums: dict[str, float]) -> None:
    """Tune returns normally after Ctrl-C; only a round whose GA stopped, or whose target was met, is done."""
    run_dir = run.path
    experiment = read_status(run_dir)["experiment"]
    searcher = load_searcher(run_dir, experiment)
    finals = [r["metrics"] for r in tune_results(run.search / experiment).values()
              if r["metrics"].get("final")]
    met = bool(minimums) and any(meets_targets(m, minimums) for m in finals)
    if met or (searcher is not None and searcher.ga.stop_reason()):
        write_status(run_dir, state="done")
        return
    atomic.check_writable(run_dir)  # Tune logs a failed save and goes on: a full disk ends the round early
    console.print(f"[yellow]The search was interrupted.[/yellow] Finished trials are kept; continue with "
                  f"`yoloforge resume {run_dir}`")
    raise KeyboardInterrupt


def stage_search(state: RunState) -> SearchOutcome:
    """Run (or resume, or continue) the search on intake's model and clean dataset; returns its outcome. A target
    the user changes when asked is written to job.yaml and becomes state.spec."""
    assert state.model_path is not None and state.data is not None, "intake runs first"
    spec, run, task, choices = state.spec, state.run, state.task, state.choices
    model, data, run_dir = state.model_path, state.data, state.run.path
    console.rule("[bold]2 search[/bold]")
    status = read_status(run_dir)
    for round_name in status.get("rounds", []):
        for moved in set_aside_unreadable_state(run.search / round_name):
            console.print(f"[yellow]note:[/yellow] {moved.name} was cut short (a full disk or a kill while Tune "
                          f"wrote it); set aside in {moved.parent}, the search resumes from the state before it")
    if status.get("state") != "done":  # a finished search is summarised from its files: no Ray to start
        with ray_session(spec.resources.address, spec.resources.dashboard):
            ctx = trial_context(spec, task, data, model)
            if ctx.edge_device:
                device = EDGE_DEVICES[ctx.edge_device]
                console.print(f"latency cost {device.label}: the published {device.title} figure for YOLO11n at "
                              f"640 px, scaled by each trial's GFLOPs (not measured here)", markup=False)
            experiment = status.get("experiment")
            folder = run.search / str(experiment)
            rounds = status.get("rounds", [])
            if status.get("state") == "running" and experiment and restorable(folder):
                restore_round(spec, ctx, experiment)
            elif status.get("state") == "running" and len(rounds) > 1 and experiment == rounds[-1]:
                # a continued round with no whole state: only it starts again, from where the round before ended
                console.print(f"[yellow]note:[/yellow] {folder} holds no whole state of Tune's to resume from: "
                              f"round {experiment} starts again from the end of {rounds[-2]}")
                shutil.rmtree(folder, ignore_errors=True)
                extra = int(status.get("extensions", {}).get(experiment, 1))
                run_round(spec, ctx, _continued_searcher(run, rounds[-2], spec, extra), experiment)
            else:  # new, or killed before Tune wrote its first whole checkpoint
                if status.get("state") == "running":
                    console.print(f"[yellow]note:[/yellow] {folder} holds no whole state of Tune's to resume from "
                                  "(the run stopped before Tune first saved it): its round starts again")
                stops = rungs(spec)
                plan = plan_search(spec, concurrent_trials(spec), trial_estimate_s(spec, ctx, run_dir), stops)
                console.print(f"{plan.describe(spec.search.epochs, stops)}; {spec.resources.cpu} CPU / "
                              f"{spec.resources.gpu} GPU per trial", markup=False)
                shutil.rmtree(run.search / "tune", ignore_errors=True)
                write_status(run_dir, rounds=["tune"])
                searcher = build_searcher(spec, task, dataset_classes(run_dir), dataset_train_images(run_dir),
                                          pretrained=Path(model).suffix == ".pt", plan=plan)
                run_round(spec, ctx, searcher, "tune")
        _mark_done_or_interrupted(run, dict(spec.targets.metrics))
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
            return outcome
        kind, value = decision
        if kind == "target":
            spec = parse_job({**spec.model_dump(mode="json"),
                              "targets": {**spec.targets.model_dump(mode="json"), "metrics": value}},
                             str(run.job))
            dump_job(spec, run.job)
            state.spec = spec
            continue
        status = read_status(run_dir)
        rounds = status["rounds"]
        searcher = _continued_searcher(run, rounds[-1], spec, int(value))
        experiment = f"tune-{len(rounds) + 1}"
        write_status(run_dir, rounds=[*rounds, experiment],
                     extensions={**status.get("extensions", {}), experiment: int(value)})
        console.print(f"continuing for {value} more generation(s) as {experiment}")
        with ray_session(spec.resources.address, spec.resources.dashboard):
            run_round(spec, trial_context(spec, task, data, model), searcher, experiment)
        _mark_done_or_interrupted(run, dict(spec.targets.metrics))
        continued += 1



def _continued_searcher(run: RunDir, previous: str, spec: JobSpec, generations: int) -> Any:
    """The searcher as round `previous` left it, its finished trials told, ready for `generations` more."""
    searcher = load_searcher(run.path, previous)
    if searcher is None:
        raise YoloforgeError("the previous round left no searcher state to continue from", where=str(run.search))
    searcher.complete_pending({tid: (r["metrics"] if r["metrics"].get("final") else None)
                               for tid, r in tune_results(run.search / previous).items()})
    searcher.set_targets(dict(spec.targets.metrics))
    searcher.ga.extend(generations)
    return searcher


class SearchStage:
    name = "search"

    def enabled(self, state: RunState) -> bool:
        return True

    def inputs(self, state: RunState) -> dict[str, Any]:
        """What the search's result depends on. Metric targets are left out: changing them continues a search
        (or stops it earlier) rather than starting it over. An edge device changes every trial's latency cost; it
        is named only when set, so runs without one keep the fingerprint they finished with."""
        spec, report = state.spec, state.run.read_dataset_report()
        statistics = {k: report.get(k) for k in ("names", "splits", "class_counts", "box_stats")}
        edge = {"edge_device": spec.targets.edge_device} if spec.targets.edge_device else {}
        return {"model": spec.model, "task": spec.task, "search": spec.search.model_dump(mode="json"),
                "data": tree_digest(state.run.resolve(report["clean_dir"])), "statistics": digest(statistics), **edge}

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        return False  # a current search is resumed (or, when done, summarised), never skipped

    def run(self, state: RunState, verdict: Verdict) -> bool:
        """A finished search whose inputs changed, or one forced with --from search, is moved to previous/ and
        started anew; otherwise it is resumed or kept."""
        run = state.run
        if read_status(run.path).get("state") == "done" and verdict in ("forced", "changed"):
            moved = run.archive_search()
            console.print(f"search: {'forced' if verdict == 'forced' else 'its inputs changed'}; the previous search "
                          f"is kept in {moved} and a new one starts")
        state.outcome = stage_search(state)
        console.rule()
        best = state.outcome.best or {}
        console.print(f"[green]Search done[/green] ({state.outcome.trials} trials, stopped by "
                      f"{state.outcome.stop_reason}). Best weights: {run.best_weights} "
                      f"(fitness {best.get('fitness', float('nan')):.4f})")
        console.print(f"Run directory: {run}  (trials.parquet, pareto.parquet, best/, search/)")
        command = reproduce_command(run.best_hyp)
        if command:
            console.print(f"Train the best configuration again, outside yoloforge: {command}", markup=False)
        state.stopped = state.outcome.best is None
        return read_status(run.path).get("state") == "done"


STAGE = SearchStage()
