"""Stage 3: benchmark the best weights on every inference engine and pick the configuration to deploy.

Reads best/best.pt and the intake's clean dataset; writes engines.parquet, selection.json and engines.png.
"""

from __future__ import annotations

from typing import Any

from yoloforge.core import atomic
from yoloforge.core.rundir import RunDir
from yoloforge.engines.base import ModelFacts
from yoloforge.engines.runner import BackendPool, run_grid, run_search
from yoloforge.engines.selection import Selection, int8_summary, select
from yoloforge.ray_app.benchmark.edge import describe, edge_estimate, model_gflops
from yoloforge.ray_app.benchmark.inspection import inspect_selection
from yoloforge.ray_app.benchmark.outputs import json_default, print_rows, row_line, write_chart, write_rows
from yoloforge.ray_app.benchmark.plan import engine_plan, engine_targets, resolve_device, stage_inputs
from yoloforge.ray_app.benchmark.through_bundle import rank_by_bundle
from yoloforge.ray_app.console import console
from yoloforge.ray_app.ray_session import ray_session
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict, file_digest
from yoloforge.serving.bundle import server_cannot_run


def stage_engines(state: RunState) -> Selection:
    """Benchmark, select, write the outputs (engines.parquet, selection.json, engines.png); returns the selection."""
    spec, run, task = state.spec, state.run, state.task
    console.rule("[bold]3 engines[/bold]")
    weights, clean_dir = stage_inputs(run)
    facts = ModelFacts.from_checkpoint(weights, imgsz=spec.search.imgsz)
    device = resolve_device(spec.targets.device)
    plan = engine_plan(spec, facts.imgsz, device)
    configs, mode = plan.configs, plan.mode
    targets = engine_targets(spec, task)
    metric = targets.metric
    models_dir = run.engine_models
    models_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"{len(configs)} configurations on {device}: "
                  + ("measuring all of them" if mode == "grid" else f"the GA measures at most {plan.max_configs}")
                  + f" (timed {plan.min_time_s:g} s each, {metric} on up to {plan.val_images} validation images)")
    worker_kwargs = {"weights": str(weights), "facts": facts.as_dict(), "clean_dir": clean_dir,
                     "models_dir": str(models_dir), "val_limit": plan.val_images, "min_time_s": plan.min_time_s,
                     "int8_budget_s": plan.int8_budget_s}
    with ray_session(spec.resources.address, dashboard=False):
        pool = BackendPool(worker_kwargs)
        try:
            on_row = lambda row: console.print(row_line(row, metric))  # noqa: E731
            if mode == "grid":
                rows = run_grid(pool, configs, on_row)
            else:
                rows = run_search(pool, configs, targets, facts.imgsz, plan.max_configs, on_row,
                                  seed=spec.search.seed)
            for row in rows:  # recorded relative to the run directory (RunDir.record), like every produced file
                if row.get("model_file"):
                    row["model_file"] = run.record(row["model_file"])
            selection = select(rows, targets, facts.imgsz, cannot_run=server_cannot_run)
            selection.update(mode=mode, space=len(configs), device=device, task=task,
                             model={**facts.as_dict(), "weights": run.record(weights)}, weights=run.record(weights))
            selection = rank_by_bundle(spec, run, rows, selection, plan.bundle_candidates)
            selection.update(inspect_selection(pool, selection, run, clean_dir, task, metric))
            selection["int8"] = int8_summary(rows, selection, cannot_run=server_cannot_run)
        finally:
            pool.close()
    if spec.targets.edge_device:  # the board it will run on: its speed estimated, and labelled so
        imgsz = int((Selection(selection).served or {}).get("imgsz") or facts.imgsz)
        selection["edge"] = edge_estimate(spec.targets.edge_device, model_gflops(weights, imgsz), imgsz,
                                          targets.fps)
    write_rows(rows, run.engines_table)
    atomic.write_json(run.selection, selection, default=json_default)
    run.delivered.unlink(missing_ok=True)  # measured for the previous selection
    write_chart(rows, selection, metric, targets.fps, targets.max_accuracy_drop, run.engines_chart)
    print_rows(rows, selection, metric)
    for line in describe(selection["edge"], targets.fps) if "edge" in selection else []:
        console.print(line, markup=False)
    console.print(f"Wrote {run.engines_table}, {run.selection}, {run.engines_chart}")
    return Selection(selection)


class EnginesStage:
    name = "engines"

    def enabled(self, state: RunState) -> bool:
        return True

    def inputs(self, state: RunState) -> dict[str, Any]:
        """The weights, the engines settings and the targets; and, since the configs are ranked through the
        bundle, the bundle's server settings and the Go server's source."""
        from yoloforge.serving.bundle import gateway_digest

        spec = state.spec
        found = {"engines": spec.engines.model_dump(mode="json"), "targets": spec.targets.model_dump(mode="json"),
                 "weights": file_digest(state.run.best_weights)}
        if spec.engines.bundle_candidates > 0:
            # what the delivery measurement depends on; the port, the cache (off while measuring) and the image
            # build do not change a ranking, so changing them does not measure the configs again
            ranking = spec.export.model_dump(include={"max_batch", "max_wait_ms", "max_queue", "concurrent_batches"})
            found |= {"export": ranking, "server": gateway_digest()}
        return found

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        if verdict != "current" or (selection := state.run.read_selection()) is None:
            return False
        console.print(f"engines: selection.json is current (same weights, engines, targets, bundle settings and "
                      f"server source); kept (re-run with "
                      f"`yoloforge bench {state.run}` or --from engines)")
        state.selection = Selection(selection)
        return True

    def run(self, state: RunState, verdict: Verdict) -> bool:
        state.selection = stage_engines(state)
        finish_engines(state.run, state.selection)
        return True


def finish_engines(run: RunDir, selection: Selection) -> None:
    console.rule()
    chosen = selection.chosen
    if int8 := selection.record.get("int8"):
        for line in int8["recipes"]:
            console.print(f"int8 recipe: {line}")
        console.print(int8["verdict"])
    if chosen:
        promise, basis = selection.promise()
        console.print(f"[green]Engine chosen:[/green] {chosen['key']}, {promise:.1f} {basis} "
                      f"(see {run.selection})")
    else:
        console.print("[yellow]No engine configuration meets every target[/yellow]; see the reasoning above and "
                      f"{run.selection}")


STAGE = EnginesStage()
