"""The pipeline's stages over one run directory (see DESIGN.md: runs/<name>/...).

Stage 1 (intake) exists; search, engines, preview and export join as their issues land.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ray_app.console import console, print_model, print_report, progress_bars
from ray_app.errors import DatasetError
from ray_app.intake.check import Intake, check_dataset
from ray_app.intake.synth import synth_dataset
from ray_app.spec import JobSpec, Targets, dump_job, parse_job
from ray_app.zoo import ModelInfo, resolve_model

STAGES = ("intake",)
PLANNED_STAGES = ("search", "engines", "preview", "export")


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


def run_job(spec: JobSpec) -> IntakeResult:
    """Run every stage that exists, in order, in spec.run_dir."""
    console.print(f"[bold]yoloforge[/bold] run [cyan]{spec.name}[/cyan] -> {spec.run_dir}")
    result = stage_intake(spec)
    console.rule()
    console.print(f"[green]Intake done.[/green] Clean dataset: {result.intake.data_arg}")
    console.print(f"Run directory: {spec.run_dir}  (job.yaml, model.json, dataset_report.json, data/)")
    console.print(f"Stages not built yet: {', '.join(PLANNED_STAGES)}.", style="dim")
    return result


def demo_spec(runs_dir: Path, task: str = "detect") -> JobSpec:
    """The demo's job: a nano model from its .yaml on the synthetic shapes dataset."""
    model = {"detect": "yolo11n.yaml", "segment": "yolo11n-seg.yaml", "classify": "yolo11n-cls.yaml"}[task]
    data = runs_dir / "demo" / "synthetic"
    metric = {"detect": "mAP50-95", "segment": "mask_mAP50-95", "classify": "top1"}[task]
    return JobSpec(name="demo", model=model, task=task,  # type: ignore[arg-type]
                   data={"path": str(data.resolve())},  # type: ignore[arg-type]
                   targets=Targets(metrics={metric: 0.3}),  # type: ignore[dict-item]
                   search={"population": 4, "generations": 2, "epochs": 5, "imgsz": 128,  # type: ignore[arg-type]
                           "batch": 16},
                   runs_dir=str(runs_dir.resolve()))


def run_demo(runs_dir: Path, task: str = "detect") -> IntakeResult:
    spec = demo_spec(runs_dir, task)
    data = Path(spec.data.path)
    if not data.exists():
        with console.status("writing the synthetic dataset"):
            synth_dataset(data, task=task)
    return run_job(spec)
