"""The pipeline: the stages of ray_app/stages/ in order over one run directory (runs/<name>/, core/rundir.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import read_json
from yoloforge.engines.selection import Selection
from yoloforge.ray_app.console import console
from yoloforge.ray_app.intake.synth import synth_dataset
from yoloforge.ray_app.outcome import engine_verdict, target_rows
from yoloforge.ray_app.spec import JobSpec, Targets
from yoloforge.ray_app.stages import NAMES, STAGES, RunState, Stage
from yoloforge.ray_app.stages.base import SearchChoices
from yoloforge.ray_app.stages.freshness import force, record, verdict


def _check_stage_name(option: str, value: str | None, names: Sequence[str] = NAMES) -> None:
    if value is not None and value not in names:
        raise YoloforgeError(f"unknown {option} '{value}'; stages: {', '.join(names)}")


def run_stages(state: RunState, until: str = NAMES[-1], from_stage: str | None = None,
               stages: Sequence[Stage] | None = None) -> RunState:
    """Run the stages (default: every stage of ray_app/stages/, in order) up to and including `until`. A stage
    whose inputs did not change since it last finished keeps its outputs; from_stage runs that stage and the later
    ones again."""
    stages = STAGES if stages is None else stages
    names = [stage.name for stage in stages]
    _check_stage_name("stage", until, names)
    _check_stage_name("--from stage", from_stage, names)
    run = state.run
    if run.path.is_dir():
        atomic.remove_leftovers(run.path)
        if from_stage is not None:
            force(run, names[names.index(from_stage):])
    for stage in stages[:names.index(until) + 1]:
        if not stage.enabled(state):
            continue
        inputs = stage.inputs(state)
        seen = verdict(run, stage.name, inputs)
        if seen != "forced" and stage.keep(state, seen):
            if inputs is not None:
                record(run, stage.name, inputs)
            continue
        if stage.run(state, seen) and inputs is not None:
            record(run, stage.name, inputs)
        if state.stopped:
            break
    if until == "intake":
        console.rule()
        console.print(f"[green]Intake done.[/green] Clean dataset: {state.data}; stopping here "
                      f"(--until intake). Continue with `yoloforge resume {run}`.")
        return state
    report(run.path)
    if state.outcome is not None and until not in ("search",) and not state.stopped:
        summary(state, until)
    return state


def run_job(spec: JobSpec, choices: SearchChoices | None = None, until: str = NAMES[-1],
            from_stage: str | None = None) -> RunState:
    """Run a job in spec.run_dir (see run_stages)."""
    _check_stage_name("stage", until)
    _check_stage_name("--from stage", from_stage)
    console.print(f"[bold]yoloforge[/bold] run [cyan]{spec.name}[/cyan] -> {spec.run_dir}")
    return run_stages(RunState(spec, choices=choices or SearchChoices()), until, from_stage)


def resume_run(run_dir: Path, choices: SearchChoices | None = None, from_stage: str | None = None) -> RunState:
    """Continue an interrupted run: intake's outputs are reused when complete, an unfinished search is restored,
    later stages run when their inputs changed (or from from_stage on)."""
    state = RunState.open(run_dir)
    state.choices, state.resuming = choices or SearchChoices(), True
    console.print(f"[bold]yoloforge[/bold] resume [cyan]{state.spec.name}[/cyan] -> {state.run}")
    return run_stages(state, NAMES[-1], from_stage)


def summary(state: RunState, until: str) -> None:
    """The end of a run: targets against what was achieved, the engine, the bundle and how to start it."""
    from rich.table import Table

    spec, run, selection = state.spec, state.run, state.selection
    assert state.outcome is not None
    table = Table(title=f"yoloforge {spec.name}: target vs achieved", show_lines=False)
    for column in ("", "target", "achieved", ""):
        table.add_column(column)

    marks = {None: "", True: "[green]met[/green]", False: "[red]missed[/red]"}
    delivered = read_json(run.delivered) if until == "export" else None
    for row in target_rows(spec.targets.model_dump(), state.outcome.best, selection, delivered):
        table.add_row(row.name, row.target, row.achieved, marks[row.met])
    verdict = engine_verdict(selection)
    if verdict:
        table.add_row("engine", "", verdict[0], "chosen" if verdict[1] else "[yellow]closest[/yellow]")
    console.rule()
    console.print(table)
    bundle = run.bundle
    if until == "export" and (bundle / "bin").is_dir():
        console.print(f"Bundle: {bundle}  ->  cd {bundle} && cp .env.example .env && docker compose up -d --build")
    console.print(f"Report: {run.report}")


def report(run_dir: Path) -> Path:
    """Write report.html from what the run holds, and say where it is."""
    from yoloforge.ray_app.report import write_report

    path = write_report(run_dir)
    console.print(f"Report: {path} (open it in a browser; it needs no network)")
    return path


def bench_run(run_dir: Path) -> Selection:
    """`yoloforge bench RUN_DIR`: the engines stage alone, on the run's best weights."""
    from yoloforge.ray_app.stages import engines

    state = RunState.open(run_dir)
    inputs = engines.STAGE.inputs(state)
    engines.STAGE.run(state, "forced")
    record(state.run, engines.STAGE.name, inputs)
    assert state.selection is not None
    return state.selection


def demo_spec(runs_dir: Path, task: str = "detect") -> JobSpec:
    """The demo's job: a nano model from its .yaml on the synthetic shapes dataset, trained until it works."""
    model = {"detect": "yolo11n.yaml", "segment": "yolo11n-seg.yaml", "classify": "yolo11n-cls.yaml"}[task]
    data = runs_dir / "demo" / "synthetic"
    metric = {"detect": "mAP50", "segment": "mask_mAP50", "classify": "top1"}[task]
    # a known-good starting point (AdamW, no mosaic, a step every 16 images) beside Ultralytics' defaults: 50
    # epochs meet the 0.5 target in the first generation with margin (docs/measured-defaults.md), so the demo ends
    # with a detector that finds the shapes; the second generation is the fallback
    return JobSpec(name="demo", model=model, task=task,  # type: ignore[arg-type]
                   data={"path": str(data.resolve())},  # type: ignore[arg-type]
                   # 100 img/s at 128 px: PyTorch eager misses it on two cores, exported engines make it
                   # (docs/measured-defaults.md)
                   targets=Targets(metrics={metric: 0.5}, fps=100),  # type: ignore[dict-item]
                   search={"population": 2, "generations": 2, "epochs": 50, "imgsz": 128,  # type: ignore[arg-type]
                           "batch": 16, "initial": [{"optimizer": "AdamW", "lr0": 0.002, "mosaic": 0.0, "nbs": 16}]},
                   resources={"cpu": 1, "gpu": 0},  # type: ignore[arg-type]
                   engines={"backends": ["pytorch", "onnxruntime", "openvino", "tensorrt"],  # type: ignore[arg-type]
                            "precisions": ["fp32", "int8"], "batch_sizes": [1, 8], "min_time_s": 1.0,
                            # a short int8 recipe search: the demo shows it, a real run's default is 120 s
                            "val_images": 32, "int8_budget_s": 8},
                   preview={"enabled": True, "port": 8765},  # type: ignore[arg-type]
                   runs_dir=str(runs_dir.resolve()))


def run_demo(runs_dir: Path, task: str = "detect", dashboard: bool = True) -> RunState:
    spec = demo_spec(runs_dir, task)
    spec = spec.model_copy(update={"resources": spec.resources.model_copy(update={"dashboard": dashboard})})
    data = Path(spec.data.path)
    if not data.exists():
        with console.status("writing the synthetic dataset"):
            synth_dataset(data, task=task)
    return run_job(spec)
