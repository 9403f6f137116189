"""Stage 1: resolve the model, check the dataset, write job.yaml, model.json, dataset_report.json and the clean
copy of the dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoloforge.core import atomic
from yoloforge.core.errors import DatasetError, MissingInput
from yoloforge.core.rundir import RunDir
from yoloforge.ray_app.console import console, print_model, print_report, progress_bars
from yoloforge.ray_app.intake.check import Intake, check_dataset
from yoloforge.ray_app.intake.layout import declared_root
from yoloforge.ray_app.spec import JobSpec, dump_job, parse_job
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict, source_digest
from yoloforge.ray_app.zoo import ModelInfo, resolve_model


@dataclass
class IntakeResult:
    spec: JobSpec  # with task filled in from the model
    model: ModelInfo
    intake: Intake
    report_path: Path


def stage_intake(state: RunState) -> IntakeResult:
    """Resolve the model, check the dataset, write job.yaml, model.json, dataset_report.json and the clean copy."""
    spec, run = state.spec, state.run
    run.path.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]1 intake[/bold]")
    with console.status(f"loading model {spec.model}"):
        model = resolve_model(spec.model, spec.task)
    if model.source == "yaml":  # an untrained model has no input size of its own: it gets the job's
        model.imgsz = spec.search.imgsz
    print_model(model)
    spec = with_task(spec, run, spec.task or model.task)
    atomic.write_json(run.model_info, model.as_dict())

    if not Path(spec.data.path).expanduser().exists():
        raise MissingInput(f"dataset {spec.data.path} (the job's data:) does not exist",
                           fix="check data: in job.yaml (or --data); relative paths are relative to job.yaml")
    with progress_bars() as progress:
        intake = check_dataset(
            spec.data.path, task=spec.task, work_dir=run.data,
            # every checkpoint's classes are compared (an official one's too: its 80 COCO classes becoming the
            # dataset's is a re-trained head, which the report says); a .yaml has none yet
            model_names=model.names,
            allow_name_mismatch=spec.data.allow_name_mismatch, val_split=spec.data.val_split,
            split_seed=spec.data.split_seed, max_bad_fraction=spec.data.max_bad_fraction, progress=progress)
        if intake.report.ok:
            intake.write_clean(run.data, progress)
    report_path = intake.report.write(run.dataset_report)
    print_report(intake.report, str(report_path))
    if not intake.report.ok:
        raise DatasetError(f"the dataset has {len(intake.report.errors)} error(s); the run stops here",
                           where=str(spec.data.path), fix=f"see the errors above and {report_path}")
    return IntakeResult(spec, model, intake, report_path)


def with_task(spec: JobSpec, run: RunDir, task: str) -> JobSpec:
    """The spec re-validated with its task known (so metric names are checked against it), written as job.yaml."""
    spec = parse_job({**spec.model_dump(mode="json"), "task": task}, str(run.job))
    dump_job(spec, run.job)
    return spec


class IntakeStage:
    name = "intake"

    def enabled(self, state: RunState) -> bool:
        return True

    def inputs(self, state: RunState) -> dict[str, Any]:
        """The dataset's files (for a data.yaml, its folder's), the data settings, the model (its file's digest
        when it is a local file) and, for a model built from .yaml, the input size."""
        spec = state.spec
        data = Path(spec.data.path).expanduser()
        model = Path(spec.model).expanduser()
        folder = data.parent if data.suffix in (".yaml", ".yml") else data
        data_yaml = data if data.suffix in (".yaml", ".yml") else data / "data.yaml"
        # a data.yaml's `path:` may name another folder, which is the one read (a copied dataset's original)
        elsewhere = declared_root(data_yaml) if data_yaml.is_file() else None
        return {"data": spec.data.model_dump(mode="json"),
                "source": source_digest(folder),
                "read_from": source_digest(elsewhere) if elsewhere and elsewhere != folder.resolve() else None,
                "model": spec.model, "model_file": source_digest(model) if model.is_file() else None,
                "task": spec.task, "imgsz": spec.search.imgsz}

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        """Kept when it checked these very inputs (or, on resume, whenever it finished) and its outputs are
        still there; other settings (search, engines, targets) may have changed, so job.yaml is rewritten."""
        run = state.run
        if not (verdict == "current" or state.resuming) or not run.intake_ok():
            return False
        model = run.read_model_info() or {}
        data = run.clean_data(state.spec.task or model.get("task", "detect"))
        if data is None:
            if state.resuming:
                console.print("intake's clean copy of the dataset is missing; running intake again")
            return False
        state.spec = with_task(state.spec, run, state.spec.task or model["task"])
        state.model_path, state.data = model["path"], str(data)
        console.print("intake: the dataset, its settings and the model are those already checked; kept "
                      f"(--from intake checks them again). Clean dataset: {data}")
        return True

    def run(self, state: RunState, verdict: Verdict) -> bool:
        if state.resuming and verdict != "forced":
            console.print("intake did not finish; running it again")
        result = stage_intake(state)
        state.spec = result.spec
        state.model_path, state.data = result.model.path, result.intake.data_arg
        return True


STAGE = IntakeStage()
