"""The pipeline's stages over one run directory (see DESIGN.md: runs/<name>/...).

Stages: 1 intake, 2 search, 3 engines, 4 preview (when enabled), 5 export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from yoloforge.core.errors import DatasetError, YoloforgeError
from yoloforge.ray_app import stages
from yoloforge.ray_app.console import console, print_model, print_report, progress_bars
from yoloforge.ray_app.engine_stage import stage_engines
from yoloforge.ray_app.export_stage import stage_export
from yoloforge.ray_app.intake.check import Intake, check_dataset
from yoloforge.ray_app.intake.synth import synth_dataset
from yoloforge.ray_app.outcome import engine_verdict, target_rows
from yoloforge.ray_app.preview_stage import check_preview
from yoloforge.ray_app.search import SearchChoices, SearchOutcome, stage_search
from yoloforge.ray_app.spec import JobSpec, Targets, dump_job, load_job, parse_job
from yoloforge.ray_app.zoo import ModelInfo, resolve_model

STAGES = ("intake", "search", "engines", "preview", "export")


@dataclass
class IntakeResult:
    spec: JobSpec  # with task filled in from the model
    model: ModelInfo
    intake: Intake
    report_path: Path


def stage_intake(spec: JobSpec) -> IntakeResult:
    """Resolve the model, check the dataset, write job.yaml, model.json, dataset_report.json and the clean copy."""
    run_dir = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]1 intake[/bold]")
    with console.status(f"loading model {spec.model}"):
        model = resolve_model(spec.model, spec.task)
    if model.source == "yaml":  # an untrained model has no input size of its own: it gets the job's
        model.imgsz = spec.search.imgsz
    print_model(model)
    # re-validate with the task known, so metric names are checked against it
    spec = parse_job({**spec.model_dump(mode="json"), "task": spec.task or model.task}, str(run_dir / "job.yaml"))
    dump_job(spec, run_dir / "job.yaml")
    (run_dir / "model.json").write_text(json.dumps(model.as_dict(), indent=2))

    with progress_bars() as progress:
        intake = check_dataset(
            spec.data.path, task=spec.task, work_dir=run_dir / "data",
            # pretrained official models are COCO-trained: new names are the normal case, not a mistake
            model_names=model.names if model.source == "custom" else None,
            allow_name_mismatch=spec.data.allow_name_mismatch, val_split=spec.data.val_split,
            split_seed=spec.data.split_seed, max_bad_fraction=spec.data.max_bad_fraction, progress=progress)
        if intake.report.ok:
            intake.write_clean(run_dir / "data", progress)
    report_path = intake.report.write(run_dir / "dataset_report.json")
    print_report(intake.report, str(report_path))
    if not intake.report.ok:
        raise DatasetError(f"the dataset has {len(intake.report.errors)} error(s); the run stops here",
                           where=str(spec.data.path), fix=f"see the errors above and {report_path}")
    return IntakeResult(spec, model, intake, report_path)


@dataclass
class RunResult:
    spec: JobSpec
    intake: IntakeResult | None
    search: SearchOutcome | None  # None when the run stopped after intake
    selection: dict | None = None  # selection.json; None when the run stopped before the engines stage


def _finish(spec: JobSpec, outcome: SearchOutcome) -> None:
    console.rule()
    best = outcome.best or {}
    fitness = best.get("fitness", float("nan"))
    console.print(f"[green]Search done[/green] ({outcome.trials} trials, stopped by {outcome.stop_reason}). "
                  f"Best weights: {spec.run_dir / 'best' / 'best.pt'} (fitness {fitness:.4f})")
    console.print(f"Run directory: {spec.run_dir}  (trials.parquet, pareto.parquet, best/, search/)")


def _finish_engines(spec: JobSpec, selection: dict) -> None:
    console.rule()
    chosen = selection.get("chosen")
    if chosen:
        console.print(f"[green]Engine chosen:[/green] {chosen['backend']} {chosen['precision']} batch "
                      f"{chosen['batch']} @{chosen['imgsz']}px, {chosen['throughput']:.1f} img/s "
                      f"(see {spec.run_dir / 'selection.json'})")
    else:
        console.print("[yellow]No engine configuration meets every target[/yellow]; see the reasoning above and "
                      f"{spec.run_dir / 'selection.json'}")


def _engines_current(run_dir: Path) -> bool:
    selection, weights = run_dir / "selection.json", run_dir / "best" / "best.pt"
    return selection.is_file() and weights.is_file() and selection.stat().st_mtime >= weights.stat().st_mtime


def run_engines(spec: JobSpec, task: str, force: bool = True) -> dict:
    """The engines stage; without force it is skipped when its inputs (the weights, the engines and targets
    settings) are those of the selection.json already there."""
    run_dir = spec.run_dir
    inputs = stages.engines_inputs(spec, run_dir)
    if not force and (run_dir / "selection.json").is_file() and not stages.forced(run_dir, "engines") and (
            stages.is_current(run_dir, "engines", inputs)
            or (stages.recorded(run_dir, "engines") is None and _engines_current(run_dir))):
        console.print(f"engines: selection.json is current (same weights, engines and targets); kept (re-run with "
                      f"`yoloforge bench {run_dir}` or --from engines)")
        stages.record(run_dir, "engines", inputs)
        return json.loads((run_dir / "selection.json").read_text())
    selection = stage_engines(spec, task)
    stages.record(run_dir, "engines", inputs)
    _finish_engines(spec, selection)
    return selection


def _search(spec: JobSpec, model: str, data: str, task: str, choices: SearchChoices | None) -> tuple[JobSpec,
                                                                                                      SearchOutcome]:
    """The search stage: a finished search whose inputs changed (model, search settings, dataset), or one
    forced with --from search, is moved to previous/ and started anew; otherwise it is resumed or kept."""
    from yoloforge.ray_app.search import read_status

    run_dir = spec.run_dir
    inputs = stages.search_inputs(spec, run_dir)
    done = read_status(run_dir).get("state") == "done"
    forced = stages.forced(run_dir, "search")
    changed = stages.recorded(run_dir, "search") is not None and not stages.is_current(run_dir, "search", inputs)
    if done and (forced or changed):
        moved = stages.archive_search(run_dir)
        console.print(f"search: {'forced' if forced else 'its inputs changed'}; the previous search is kept in "
                      f"{moved} and a new one starts")
    spec, outcome = stage_search(spec, model, data, task, choices)
    if read_status(run_dir).get("state") == "done":
        stages.record(run_dir, "search", inputs)
    _finish(spec, outcome)
    return spec, outcome


def _after_search(spec: JobSpec, task: str, outcome: SearchOutcome, intake: IntakeResult | None,
                  until: str) -> RunResult:
    if until == "search" or outcome.best is None:
        report(spec.run_dir)
        return RunResult(spec, intake, outcome)
    run_dir = spec.run_dir
    selection = run_engines(spec, task, force=False)
    if until != "engines" and spec.preview.enabled:
        check_preview(run_dir)
    if until == "export":
        stage_export(run_dir, force=stages.forced(run_dir, "export"))
        stages.record(run_dir, "export", {"selection": stages.file_digest(run_dir / "selection.json")})
    report(run_dir)
    summary(spec, outcome, selection, until)
    return RunResult(spec, intake, outcome, selection)


def run_job(spec: JobSpec, choices: SearchChoices | None = None, until: str = STAGES[-1],
            from_stage: str | None = None) -> RunResult:
    """Run the stages in order in spec.run_dir, up to and including `until`. Stages whose inputs did not change
    since they last finished are kept; from_stage runs that stage and the later ones again."""
    for name, value in (("stage", until), ("--from stage", from_stage)):
        if value is not None and value not in STAGES:
            raise YoloforgeError(f"unknown {name} '{value}'; stages: {', '.join(STAGES)}")
    console.print(f"[bold]yoloforge[/bold] run [cyan]{spec.name}[/cyan] -> {spec.run_dir}")
    if from_stage is not None and spec.run_dir.is_dir():
        stages.forget_from(spec.run_dir, from_stage)
    kept = _checked_intake(spec)
    if kept is not None:
        spec, model_path, data = kept
        intake = None
        console.print("intake: the dataset, its settings and the model are those already checked; kept "
                      f"(--from intake checks them again). Clean dataset: {data}")
    else:
        intake = stage_intake(spec)
        stages.record(spec.run_dir, "intake", stages.intake_inputs(spec))
        spec, model_path, data = intake.spec, intake.model.path, intake.intake.data_arg
    if until == "intake":
        console.rule()
        console.print(f"[green]Intake done.[/green] Clean dataset: {data}; stopping here "
                      f"(--until intake). Continue with `yoloforge resume {spec.run_dir}`.")
        return RunResult(spec, intake, None)
    task = spec.task or "detect"
    spec, outcome = _search(spec, model_path, data, task, choices)
    return _after_search(spec, task, outcome, intake, until)


def _clean_data(run_dir: Path, task: str) -> str | None:
    """What training is given for the clean copy intake wrote (None when it is missing)."""
    try:
        clean = Path(json.loads((run_dir / "dataset_report.json").read_text())["clean_dir"])
    except (OSError, ValueError, KeyError):
        return None
    data = clean if task == "classify" else clean / "data.yaml"
    return str(data) if data.exists() else None


def _checked_intake(spec: JobSpec) -> tuple[JobSpec, str, str] | None:
    """(spec with its task, model path, clean data) when intake already checked these very inputs and its
    outputs are still there; None when it has to run."""
    run_dir = spec.run_dir
    if stages.forced(run_dir, "intake") or not stages.is_current(run_dir, "intake", stages.intake_inputs(spec)):
        return None
    try:
        model = json.loads((run_dir / "model.json").read_text())
        ok = json.loads((run_dir / "dataset_report.json").read_text()).get("ok")
    except (OSError, ValueError):
        return None
    data = _clean_data(run_dir, spec.task or model["task"])
    if not ok or data is None:
        return None
    # other settings (search, engines, targets) may have changed: job.yaml is rewritten as intake would
    spec = parse_job({**spec.model_dump(mode="json"), "task": spec.task or model["task"]}, str(run_dir / "job.yaml"))
    dump_job(spec, run_dir / "job.yaml")
    return spec, model["path"], data


def resume_run(run_dir: Path, choices: SearchChoices | None = None, from_stage: str | None = None) -> RunResult:
    """Continue an interrupted run: intake's outputs are reused, an unfinished search is restored, later stages
    run when their inputs changed (or from from_stage on)."""
    job = run_dir / "job.yaml"
    report_path = run_dir / "dataset_report.json"
    model_json = run_dir / "model.json"
    if not job.is_file():
        raise YoloforgeError(f"{run_dir} is not a yoloforge run directory (no job.yaml)",
                             fix="give the folder under runs/ that `yoloforge run` created")
    spec = load_job(job)
    if from_stage == "intake" or not (report_path.is_file() and model_json.is_file()
                                      and json.loads(report_path.read_text()).get("ok")):
        if from_stage != "intake":
            console.print("intake did not finish; running it again")
        return run_job(spec, choices, from_stage=from_stage)
    if from_stage is not None:
        if from_stage not in STAGES:
            raise YoloforgeError(f"unknown --from stage '{from_stage}'; stages: {', '.join(STAGES)}")
        stages.forget_from(run_dir, from_stage)
    task = spec.task or "detect"
    data = _clean_data(run_dir, task)
    if data is None:
        console.print("intake's clean copy of the dataset is missing; running intake again")
        return run_job(spec, choices, from_stage="intake")
    console.print(f"[bold]yoloforge[/bold] resume [cyan]{spec.name}[/cyan] -> {spec.run_dir} (intake already done)")
    spec, outcome = _search(spec, json.loads(model_json.read_text())["path"], data, task, choices)
    return _after_search(spec, task, outcome, None, STAGES[-1])


def summary(spec: JobSpec, outcome: SearchOutcome, selection: dict | None, until: str) -> None:
    """The end of a run: targets against what was achieved, the engine, the bundle and how to start it."""
    from rich.table import Table

    run_dir = spec.run_dir
    table = Table(title=f"yoloforge {spec.name}: target vs achieved", show_lines=False)
    for column in ("", "target", "achieved", ""):
        table.add_column(column)

    marks = {None: "", True: "[green]met[/green]", False: "[red]missed[/red]"}
    for row in target_rows(spec.targets.model_dump(), outcome.best, selection):
        table.add_row(row.name, row.target, row.achieved, marks[row.met])
    verdict = engine_verdict(selection)
    if verdict:
        table.add_row("engine", "", verdict[0], "chosen" if verdict[1] else "[yellow]closest[/yellow]")
    console.rule()
    console.print(table)
    bundle = run_dir / "bundle"
    if until == "export" and (bundle / "bin").is_dir():
        console.print(f"Bundle: {bundle}  ->  cd {bundle} && cp .env.example .env && docker compose up -d --build")
    console.print(f"Report: {run_dir / 'report.html'}")


def report(run_dir: Path) -> Path:
    """Write report.html from what the run holds, and say where it is."""
    from yoloforge.ray_app.report import write_report

    path = write_report(run_dir)
    console.print(f"Report: {path} (open it in a browser; it needs no network)")
    return path


def bench_run(run_dir: Path) -> dict:
    """`yoloforge bench RUN_DIR`: the engines stage alone, on the run's best weights."""
    job = run_dir / "job.yaml"
    if not job.is_file():
        raise YoloforgeError(f"{run_dir} is not a yoloforge run directory (no job.yaml)",
                             fix="give the folder under runs/ that `yoloforge run` created")
    spec = load_job(job)
    return run_engines(spec, spec.task or "detect")


def demo_spec(runs_dir: Path, task: str = "detect") -> JobSpec:
    """The demo's job: a nano model from its .yaml on the synthetic shapes dataset, trained until it works."""
    model = {"detect": "yolo11n.yaml", "segment": "yolo11n-seg.yaml", "classify": "yolo11n-cls.yaml"}[task]
    data = runs_dir / "demo" / "synthetic"
    metric = {"detect": "mAP50", "segment": "mask_mAP50", "classify": "top1"}[task]
    # a known-good starting point (AdamW, no mosaic) beside Ultralytics' defaults: on 2 CPU cores it reaches
    # mAP50 0.66 after 45 epochs (0.34 after 30), so 50 epochs meet the 0.5 target in the first generation with
    # margin and the demo ends with a detector that finds the shapes; the second generation is the fallback
    return JobSpec(name="demo", model=model, task=task,  # type: ignore[arg-type]
                   data={"path": str(data.resolve())},  # type: ignore[arg-type]
                   # 100 img/s at 128 px: PyTorch eager misses it on two cores, exported engines make it
                   targets=Targets(metrics={metric: 0.5}, fps=100),  # type: ignore[dict-item]
                   search={"population": 2, "generations": 2, "epochs": 50, "imgsz": 128,  # type: ignore[arg-type]
                           "batch": 16, "initial": [{"optimizer": "AdamW", "lr0": 0.002, "mosaic": 0.0}]},
                   resources={"cpu": 1, "gpu": 0},  # type: ignore[arg-type]
                   engines={"backends": ["pytorch", "onnxruntime", "openvino", "tensorrt"],  # type: ignore[arg-type]
                            "precisions": ["fp32", "int8"], "batch_sizes": [1, 8], "min_time_s": 1.0,
                            "val_images": 32},
                   preview={"enabled": True, "port": 8765},  # type: ignore[arg-type]
                   runs_dir=str(runs_dir.resolve()))


def run_demo(runs_dir: Path, task: str = "detect", dashboard: bool = True) -> RunResult:
    spec = demo_spec(runs_dir, task)
    spec = spec.model_copy(update={"resources": spec.resources.model_copy(update={"dashboard": dashboard})})
    data = Path(spec.data.path)
    if not data.exists():
        with console.status("writing the synthetic dataset"):
            synth_dataset(data, task=task)
    return run_job(spec)
