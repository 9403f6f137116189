"""Building a job from what a user gives on the command line: `yoloforge init`'s template, `yoloforge run`'s flags
over a job.yaml (or instead of one), and the questions asked in a terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.prompt import Confirm, FloatPrompt, Prompt
from yoloforge.core.errors import SpecError
from yoloforge.ray_app.console import console
from yoloforge.ray_app.spec import METRICS_BY_TASK, JobSpec, dump_job, load_job

TEMPLATE = Path(__file__).parent / "templates" / "job.yaml"


def render_template(name: str = "run", model: str = "yolo11n.pt", task: str = "detect",
                    data: str = "path/to/dataset", imgsz: int = 640) -> str:
    metric = {"classify": "top1"}.get(task, "mAP50-95")
    return TEMPLATE.read_text().format(name=name, model=model, task=task, data=data, metric=metric,
                                       metric_value=0.5, imgsz=imgsz)


def check_task(task: str) -> None:
    """A task a command was given is one yoloforge knows."""
    if task not in METRICS_BY_TASK:
        raise SpecError(f"task '{task}' is not one of: {', '.join(METRICS_BY_TASK)}")


def job_from_flags(job: Path | None, *, asking: bool, model: str | None = None, task: str | None = None,
                   name: str | None = None, data: str | None = None, target: list[str] | None = None,
                   fps: float | None = None, device: str | None = None, split_val: float | None = None,
                   runs_dir: Path | None = None, address: str | None = None) -> dict[str, Any]:
    """The job `yoloforge run` runs, unvalidated: job.yaml with the flags over it; without one, the flags (with
    --data) or, when asking, the answers to questions."""
    overrides: dict[str, Any] = {k: v for k, v in {"model": model, "task": task, "name": name}.items() if v}
    if job is not None:
        raw = load_job(job).model_dump(mode="json")
        raw.update(overrides)
        if data:
            raw["data"]["path"] = str(Path(data).resolve())
    elif asking and not data:
        raw = ask_spec({"model": model, "task": task, "name": name, "data": data})
    elif data:
        raw = {**overrides, "data": {"path": str(Path(data).resolve())}}
    else:
        raise SpecError("no job.yaml and no --data", fix="run `yoloforge run job.yaml` (see `yoloforge init`), "
                        "or `yoloforge run --data PATH [--model ...]`, or run it in a terminal to be asked")
    targets = raw.setdefault("targets", {})
    if target:
        targets.setdefault("metrics", {}).update(parse_targets(target))
    if fps:
        targets["fps"] = fps
    if device:
        targets["device"] = device
    if split_val is not None:
        raw["data"]["val_split"] = split_val
    if runs_dir is not None:
        raw["runs_dir"] = str(runs_dir.resolve())
    if address:
        raw.setdefault("resources", {})["address"] = address
    return raw


def parse_targets(values: list[str]) -> dict[str, float]:
    targets = {}
    for item in values:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            targets[key.strip()] = float(value)
        except ValueError:
            raise SpecError(f"--target '{item}' must look like METRIC=VALUE, e.g. mAP50-95=0.6") from None
    return targets


def ask_spec(defaults: dict[str, Any]) -> dict[str, Any]:
    """Build a job step by step in the terminal."""
    from yoloforge.ray_app.zoo import find_official

    console.print("[bold]New yoloforge job[/bold] (Enter keeps the default)")
    model = Prompt.ask("Model: official name (see `yoloforge models`), a .pt or a .yaml",
                       default=defaults.get("model") or "yolo11n.pt", console=console)
    official = find_official(model)
    guess = official.task if official else ("segment" if "-seg" in model else "classify" if "-cls" in model
                                            else "detect")
    task = Prompt.ask("Task", choices=list(METRICS_BY_TASK), default=defaults.get("task") or guess, console=console)
    while True:
        data = Prompt.ask("Dataset: folder, .zip or data.yaml", default=defaults.get("data"), console=console)
        if data and Path(data).expanduser().exists():
            break
        console.print(f"[red]{data!r} does not exist[/red]; give the path of your dataset")
    metric = "top1" if task == "classify" else "mAP50-95"
    target = FloatPrompt.ask(f"Target {metric} (0-1)", default=0.5, console=console)
    fps_text = Prompt.ask("Target FPS (empty for none)", default="", show_default=False, console=console)
    device = Prompt.ask("Device", default="auto", console=console)
    name = Prompt.ask("Run name", default=defaults.get("name") or "run", console=console)
    job: dict[str, Any] = {"name": name, "model": model, "task": task, "data": {"path": data},
                           "targets": {"metrics": {metric: target}, "device": device}}
    if fps_text.strip():
        try:
            job["targets"]["fps"] = float(fps_text)
        except ValueError:
            raise SpecError(f"FPS '{fps_text}' is not a number") from None
    return job


def unused_job_path(wanted: Path, name: str) -> Path:
    """job-<name>.yaml beside wanted, or job-<name>-2.yaml, ... : the first name no file has."""
    candidate = wanted.with_name(f"job-{name}.yaml")
    n = 2
    while candidate.exists():
        candidate = wanted.with_name(f"job-{name}-{n}.yaml")
        n += 1
    return candidate


def save_built_job(spec: JobSpec, path: Path, *, yes: bool, asking: bool) -> bool:
    """Save a job built from flags or questions (never over the user's file without their word); False when the
    user, asked, does not want it started now."""
    if path.exists() and (yes or not Confirm.ask(f"{path} exists; overwrite?", console=console, default=False)):
        kept = path
        path = unused_job_path(path, spec.name)  # --yes never overwrites the user's file
        console.print(f"{kept} exists and is left as it is; this job is saved as {path}")
    dump_job(spec, path)
    console.print(f"wrote {path}: the job as it runs now (to run it again: `yoloforge run {path}`)")
    return not asking or Confirm.ask("Start now?", default=True, console=console)
