"""The `yoloforge` command line.

Over 300 lines on purpose: every command is registered here, in the order `yoloforge --help` shows them, and
each body only parses its flags and calls a stage or a module that does the work."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.prompt import Confirm, FloatPrompt, Prompt
from rich.table import Table
from yoloforge import __version__
from yoloforge.core.errors import (
    EXIT_BUG,
    EXIT_CODES,
    EXIT_INPUT_HAS_ERRORS,
    EXIT_INTERRUPTED,
    MissingInput,
    SpecError,
    YoloforgeError,
    disk_full,
)
from yoloforge.core.rundir import RunDir
from yoloforge.ray_app.console import console, print_error, print_model, print_report, progress_bars
from yoloforge.ray_app.spec import METRICS_BY_TASK, dump_job, json_schema, load_job, parse_job

app = typer.Typer(help="State the accuracy and speed you need from a YOLO model; yoloforge does the rest.",
                  epilog=EXIT_CODES,
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Check a dataset, or make a synthetic one.", no_args_is_help=True)
models_app = typer.Typer(help="The model zoo, and custom checkpoints.", invoke_without_command=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

F = TypeVar("F", bound=Callable[..., Any])
TEMPLATE = Path(__file__).parent / "templates" / "job.yaml"
CRASH_LOG = Path.home() / ".cache" / "yoloforge" / "last-error.log"


def friendly(func: F) -> F:
    """User errors print as a message with a fix (exit 1 or 2, core/errors.py's contract); bugs print one line and
    a log path (exit 3)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except YoloforgeError as err:
            print_error(err)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as err:
            full = disk_full(err)
            if full is not None:
                print_error(full)
                raise typer.Exit(full.exit_code) from None
            CRASH_LOG.parent.mkdir(parents=True, exist_ok=True)
            CRASH_LOG.write_text(traceback.format_exc())
            console.print("[red]internal error[/red] ", end="")
            console.print(f"({type(err).__name__}: {err}). This is a bug in yoloforge; the traceback is in "
                          f"{CRASH_LOG}", markup=False)
            raise typer.Exit(EXIT_BUG) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"yoloforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False) -> None:
    """yoloforge: model + data + targets in, an optimised inference service out."""


# --- init -----------------------------------------------------------------------------------------------


def render_template(name: str = "run", model: str = "yolo11n.pt", task: str = "detect",
                    data: str = "path/to/dataset", imgsz: int = 640) -> str:
    metric = {"classify": "top1"}.get(task, "mAP50-95")
    return TEMPLATE.read_text().format(name=name, model=model, task=task, data=data, metric=metric,
                                       metric_value=0.5, imgsz=imgsz)


@app.command()
@friendly
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the job file")] = Path("job.yaml"),
    schema: Annotated[bool, typer.Option("--schema", help="Print the JSON schema of job.yaml and exit")] = False,
    model: Annotated[str, typer.Option(help="Model name, .pt or .yaml")] = "yolo11n.pt",
    task: Annotated[str, typer.Option(help="detect, segment or classify")] = "detect",
    data: Annotated[str, typer.Option(help="Dataset folder, .zip or data.yaml")] = "path/to/dataset",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file")] = False,
) -> None:
    """Write a commented job.yaml to start from."""
    if schema:
        sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
        return
    if task not in METRICS_BY_TASK:
        raise SpecError(f"task '{task}' is not one of: {', '.join(METRICS_BY_TASK)}")
    if path.exists() and not force:
        raise SpecError(f"{path} already exists", fix="choose another path or pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_template(model=model, task=task, data=data))
    console.print(f"wrote {path}: edit data: and targets:, then run `yoloforge run {path}`")


# --- run / demo -----------------------------------------------------------------------------------------


def _parse_targets(values: list[str]) -> dict[str, float]:
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


def _ask_spec(defaults: dict[str, Any]) -> dict[str, Any]:
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


@app.command()
@friendly
def run(
    job: Annotated[Path | None, typer.Argument(help="job.yaml; without it, flags or questions build one")] = None,
    model: Annotated[str | None, typer.Option(help="Model name, .pt or .yaml")] = None,
    task: Annotated[str | None, typer.Option(help="detect, segment or classify")] = None,
    data: Annotated[str | None, typer.Option(help="Dataset folder, .zip or data.yaml")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (folder under runs/)")] = None,
    target: Annotated[list[str] | None, typer.Option(help="Metric target, e.g. mAP50-95=0.6 (repeatable)")] = None,
    fps: Annotated[float | None, typer.Option(help="Minimum FPS")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N")] = None,
    split_val: Annotated[float | None, typer.Option(help="Make a seeded val split of this fraction if none")] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Folder of run directories")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (ray://host:10001 or auto)")] = None,
    more_generations: Annotated[int, typer.Option(help="If the target is unmet, search this many more "
                                                       "generations (once) without asking")] = 0,
    until: Annotated[str, typer.Option(help="Stop after this stage: intake, search, engines, preview or "
                                            "export")] = "export",
    from_stage: Annotated[str | None, typer.Option("--from", help="Run this stage and the later ones again even "
                                                                  "if their inputs did not change")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Never ask; fail if something is missing")] = False,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Ask even without a terminal")] = False,
    write_job: Annotated[Path, typer.Option(help="Where a job built from flags/questions is saved")] = Path("job.yaml"),
) -> None:
    """Run the pipeline for a job: intake, hyperparameter search, engine benchmark and selection, preview (when
    enabled in the job) and the deployable bundle."""
    from yoloforge.ray_app.pipeline import run_job
    from yoloforge.ray_app.stages.base import SearchChoices

    overrides: dict[str, Any] = {k: v for k, v in {"model": model, "task": task, "name": name}.items() if v}
    if job is not None:
        spec = load_job(job)
        raw = spec.model_dump(mode="json")
        raw.update(overrides)
        if data:
            raw["data"]["path"] = str(Path(data).resolve())
    else:
        asking = not yes and (interactive or sys.stdin.isatty())
        if asking and not data:
            raw = _ask_spec({"model": model, "task": task, "name": name, "data": data})
        elif data:
            raw = {**overrides, "data": {"path": str(Path(data).resolve())}}
        else:
            raise SpecError("no job.yaml and no --data", fix="run `yoloforge run job.yaml` (see `yoloforge init`), "
                            "or `yoloforge run --data PATH [--model ...]`, or run it in a terminal to be asked")
    targets = raw.setdefault("targets", {})
    if target:
        targets.setdefault("metrics", {}).update(_parse_targets(target))
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
    spec = parse_job(raw, str(job) if job else "the job built from flags")
    if job is None:
        if write_job.exists() and (yes or not Confirm.ask(f"{write_job} exists; overwrite?", console=console,
                                                           default=False)):
            kept = write_job
            write_job = unused_job_path(write_job, spec.name)  # --yes never overwrites the user's file
            console.print(f"{kept} exists and is left as it is; this job is saved as {write_job}")
        dump_job(spec, write_job)
        console.print(f"wrote {write_job}: the job as it runs now (to run it again: `yoloforge run {write_job}`)")
        if not yes and (interactive or sys.stdin.isatty()) and not Confirm.ask("Start now?", default=True,
                                                                                console=console):
            return
    run_job(spec, SearchChoices(interactive=not yes and (interactive or sys.stdin.isatty()),
                                more_generations=more_generations), until=until, from_stage=from_stage)


def unused_job_path(wanted: Path, name: str) -> Path:
    """job-<name>.yaml beside wanted, or job-<name>-2.yaml, ... : the first name no file has."""
    candidate = wanted.with_name(f"job-{name}.yaml")
    n = 2
    while candidate.exists():
        candidate = wanted.with_name(f"job-{name}-{n}.yaml")
        n += 1
    return candidate


@app.command()
@friendly
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (runs/<name>)")],
    more_generations: Annotated[int, typer.Option(help="If the target is unmet, search this many more "
                                                       "generations (once) without asking")] = 0,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Never ask")] = False,
    from_stage: Annotated[str | None, typer.Option("--from", help="Run this stage and the later ones again")] = None,
) -> None:
    """Continue an interrupted run: finished trials are kept, the search goes on where it stopped, later stages
    run when their inputs changed."""
    from yoloforge.ray_app.pipeline import resume_run
    from yoloforge.ray_app.stages.base import SearchChoices

    if not run_dir.is_dir():
        raise MissingInput(f"{run_dir} does not exist", fix="give the folder under runs/ that `yoloforge run` created")
    resume_run(run_dir, SearchChoices(interactive=not yes and sys.stdin.isatty(), more_generations=more_generations),
               from_stage=from_stage)


@app.command()
@friendly
def bench(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (runs/<name>) with best/best.pt")],
) -> None:
    """Benchmark the run's best weights on every inference engine and choose the config (the engines stage)."""
    from yoloforge.ray_app.pipeline import bench_run

    if not run_dir.is_dir():
        raise MissingInput(f"{run_dir} does not exist", fix="give the folder under runs/ that `yoloforge run` created")
    bench_run(run_dir)


@app.command()
@friendly
def preview(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (runs/<name>) with selection.json")],
    host: Annotated[str | None, typer.Option(help="Listen address (default from job.yaml preview.host)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from job.yaml preview.port, 8000)")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Dynamic batching limit")] = None,
    batch_wait_ms: Annotated[float | None, typer.Option(help="How long a batch waits to fill")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C)")] = None,
) -> None:
    """Serve the selected engine behind the HTTP API (Ray Serve, dynamic batching) until Ctrl-C."""
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.preview import run_preview

    if not run_dir.is_dir():
        raise MissingInput(f"{run_dir} does not exist", fix="give the folder under runs/ that `yoloforge run` created")
    state = RunState.open(run_dir)
    state.override("preview", max_batch_size=max_batch_size, batch_wait_ms=batch_wait_ms)
    run_preview(state, host=host, port=port, duration=duration)


@app.command()
@friendly
def export(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (runs/<name>) with selection.json")],
    out: Annotated[Path | None, typer.Option(help="Where the bundle goes (default RUN_DIR/bundle; replaced)")] = None,
    build: Annotated[bool, typer.Option("--build", help="Also build its Docker image (needs a Docker engine)")] = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Start the bundle's server once and send it "
                                                                   "one image")] = True,
    max_batch_size: Annotated[int | None, typer.Option(help="Dynamic batching limit of the server")] = None,
    batch_wait_ms: Annotated[float | None, typer.Option(help="How long a batch waits to fill")] = None,
) -> None:
    """Write the deployable bundle: Go server binary, model, config.yaml, Dockerfiles, docker-compose.yml."""
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.export import stage_export

    if not run_dir.is_dir():
        raise MissingInput(f"{run_dir} does not exist", fix="give the folder under runs/ that `yoloforge run` created")
    state = RunState.open(run_dir)
    state.override("export", max_batch=max_batch_size, max_wait_ms=batch_wait_ms)
    stage_export(state, out.resolve() if out else None, build=build, check=check)


@app.command()
@friendly
def track(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (runs/<name>) with selection.json")],
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="A video file, rtsp/http URL or camera "
                                                     "(0, /dev/video0); repeat for more streams")] = None,
    out: Annotated[Path | None, typer.Option(help="Where each stream's outputs go (default RUN_DIR/tracks)")] = None,
    live: Annotated[bool | None, typer.Option("--live/--recorded", help="Keep only the newest frame (default: "
                                              "live for URLs and cameras, recorded for files)")] = None,
    max_fps: Annotated[float | None, typer.Option(min=0.1, help="Read files no faster; skip a live source's surplus")]
    = None,
    loop: Annotated[bool, typer.Option("--loop", help="Files start again at their end")] = False,
    line: Annotated[list[str] | None, typer.Option(help="A counting line NAME=x1,y1,x2,y2 (video pixels)")] = None,
    zone: Annotated[list[str] | None, typer.Option(help="A counting zone NAME=x1,y1,x2,y2,x3,y3,...")] = None,
    annotate: Annotated[bool, typer.Option("--annotate", help="Write annotated.mp4 per stream")] = False,
    classes: Annotated[str | None, typer.Option(help="Class names to track, comma-separated (default: all)")] = None,
    lost_s: Annotated[float, typer.Option(min=0.01, help="Seconds a lost track is kept for re-association")] = 1.0,
    serve: Annotated[bool, typer.Option("--serve", help="Keep running and accept streams over HTTP "
                                                        "(POST/GET/DELETE /v1/streams, /metrics)")] = False,
    host: Annotated[str, typer.Option(help="--serve: listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="--serve: port")] = 8100,
    use_ray: Annotated[bool, typer.Option("--ray", help="Spread streams over Ray actors (one per node, or per GPU)")]
    = False,
    address: Annotated[str | None, typer.Option(help="--ray: the cluster to join (default: a local Ray)")] = None,
    per: Annotated[str, typer.Option(help="--ray: one actor per node or per gpu")] = "node",
    lanes: Annotated[int | None, typer.Option(min=1, help="Engine copies side by side (default: the engines rule)")]
    = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: when the files "
                                                        "end, or Ctrl-C)")] = None,
) -> None:
    """Track objects in video streams with the run's chosen engine: IDs per stream, line and zone counts, MOT
    tracks, JSON lines and an annotated MP4 per stream, per-stream FPS."""
    from dataclasses import replace

    from yoloforge.ray_app.track import add_all, open_streams, parse_line, parse_zone, run_until_done
    from yoloforge.serving.streams.service import StreamJob
    from yoloforge.serving.streams.sources import SourceSpec
    from yoloforge.serving.streams.tracking import TrackerSettings

    run = RunDir.open(run_dir)
    if not source and not serve:
        raise SpecError("no --source given", fix="name a video: yoloforge track RUN_DIR --source video.mp4 "
                                                "(or --serve to add streams over HTTP)")
    if per not in ("node", "gpu"):
        raise SpecError(f"--per {per}: expected node or gpu", fix="--per node or --per gpu")
    lines = tuple(parse_line(text, i + 1) for i, text in enumerate(line or []))
    zones = tuple(parse_zone(text, i + 1) for i, text in enumerate(zone or []))
    specs = [SourceSpec(url, live=live, max_fps=max_fps, loop=loop) for url in source or []]
    # a file is named by its absolute path: Ray's actors do not share this shell's working directory
    specs = [s if s.is_url or s.is_camera else replace(s, url=str(Path(s.url).resolve())) for s in specs]
    wanted = tuple(c.strip() for c in (classes or "").split(",") if c.strip())
    jobs = [StreamJob(spec, lines=lines, zones=zones, annotate=annotate, tracker=TrackerSettings(lost_s=lost_s),
                      classes=wanted) for spec in specs]
    out_dir = (out or run.tracks).resolve()
    with open_streams(run.path, out_dir, use_ray=use_ray, address=address, per=per, lanes=lanes) as streams:  # type: ignore[arg-type]
        names = add_all(streams, jobs)
        if serve:
            import uvicorn
            from yoloforge.serving.streams.api import build_app

            console.print(f"streams API on http://{host}:{port}/v1/streams (metrics: /metrics); Ctrl-C stops")
            config = uvicorn.Config(build_app(streams), host=host, port=port, log_level="warning")
            server = uvicorn.Server(config)
            if duration is not None:
                import threading

                threading.Timer(duration, lambda: setattr(server, "should_exit", True)).start()
            server.run()
            return
        final = run_until_done(streams, names, duration)
    report_streams(final, out_dir)


def report_streams(final: list[dict[str, Any]], out_dir: Path) -> None:
    """One line per stream (its whole error when it failed); a run where every stream failed is an error."""
    from yoloforge.ray_app.track import StreamsFailed

    for row in final:
        if row["state"] == "failed":
            console.print(f"[red]{row['name']} failed[/red]: {row['error']}", highlight=False)
            continue
        folder = out_dir / row["name"]
        console.print(f"{row['name']}: {row['processed']} frames tracked, {row['dropped']} dropped, "
                      f"{row['tracks_seen']} tracks, {row['average_fps']:.1f} FPS on average"
                      + (f" -> {folder}" if folder.is_dir() else ""))
    if final and all(row["state"] == "failed" for row in final):
        raise StreamsFailed(f"no stream could be read ({len(final)} failed; reasons above)",
                            fix="give a video file PyAV/FFmpeg can decode, an rtsp:// or http:// URL, or a camera")


@app.command("report")
@friendly
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (runs/<name>)")],
) -> None:
    """(Re)write RUN_DIR/report.html: dataset, search, engines, selection and bundle on one offline page."""
    from yoloforge.ray_app.pipeline import report

    report(RunDir.open(run_dir).path)


@app.command()
@friendly
def demo(
    runs_dir: Annotated[Path, typer.Option(help="Folder of run directories")] = Path("runs"),
    task: Annotated[str, typer.Option(help="detect, segment or classify")] = "detect",
    dashboard: Annotated[bool, typer.Option("--dashboard/--no-dashboard", help="Start the Ray dashboard")] = True,
) -> None:
    """The whole pipeline on built-in synthetic data (no download, CPU is enough; a few minutes on 2 cores)."""
    from yoloforge.ray_app.pipeline import run_demo

    if task not in METRICS_BY_TASK:
        raise SpecError(f"task '{task}' is not one of: {', '.join(METRICS_BY_TASK)}")
    run_demo(runs_dir, task, dashboard)


# --- data -----------------------------------------------------------------------------------------------


@data_app.command("check")
@friendly
def data_check(
    path: Annotated[Path, typer.Argument(help="Dataset folder, .zip or data.yaml")],
    task: Annotated[str | None, typer.Option(help="detect, segment or classify (default: from the layout)")] = None,
    model: Annotated[str | None, typer.Option(help="Compare class names with this custom .pt")] = None,
    out: Annotated[Path | None, typer.Option(help="Where dataset_report.json goes")] = None,
    clean: Annotated[bool, typer.Option("--clean", help="Also write the clean copy and quarantine to --out")] = False,
    split_val: Annotated[float | None, typer.Option(help="Make a seeded val split of this fraction if none")] = None,
    seed: Annotated[int, typer.Option(help="Seed of that split")] = 0,
    max_bad_fraction: Annotated[float, typer.Option(help="Error above this quarantined fraction")] = 0.2,
) -> None:
    """Check a dataset and explain every problem; your files are only read. Exit 1 if it has errors (it cannot be
    trained on), 2 if it cannot be found."""
    from yoloforge.ray_app.intake.check import check_dataset

    if task is not None and task not in METRICS_BY_TASK:
        raise SpecError(f"task '{task}' is not one of: {', '.join(METRICS_BY_TASK)}")
    out = check_out_dir(path, out)
    model_names = None
    if model:
        from yoloforge.ray_app.zoo import resolve_model

        model_names = resolve_model(model, task).names
    with progress_bars() as progress:
        intake = check_dataset(path, task=task, work_dir=out, model_names=model_names, val_split=split_val,
                               split_seed=seed, max_bad_fraction=max_bad_fraction, progress=progress)
        if clean and intake.report.ok:
            intake.write_clean(out, progress)
    report_path = intake.report.write(out / "dataset_report.json")
    print_report(intake.report, str(report_path))
    if clean and intake.report.ok:
        console.print(f"clean copy: {intake.data_arg}")
    if not intake.report.ok:
        raise typer.Exit(EXIT_INPUT_HAS_ERRORS)


def check_out_dir(dataset: Path, out: Path | None) -> Path:
    """Where `data check` writes: --out, else runs/check-<name> under the current folder, or beside the dataset
    when the current folder is inside it. The user's dataset is only read, so an --out inside it is refused."""
    source = dataset.expanduser().resolve()
    root = source if source.is_dir() else source.parent if source.suffix.lower() in (".yaml", ".yml") else None
    name = source.stem if source.is_file() else source.name

    def inside(folder: Path) -> bool:
        return root is not None and folder.resolve().is_relative_to(root)

    if out is not None:
        if inside(out):
            raise SpecError(f"--out {out} is inside the dataset {root}, whose files yoloforge only reads",
                            fix="choose a folder outside the dataset, or leave --out out")
        return out
    default = Path("runs") / f"check-{name or 'dataset'}"
    if inside(default):
        assert root is not None
        default = root.parent / "runs" / f"check-{name or 'dataset'}"
        console.print(f"this folder is inside the dataset, whose files are only read: the report goes to {default}")
    return default


@data_app.command("synth")
@friendly
def data_synth(
    task: Annotated[str, typer.Option(help="detect, segment or classify")] = "detect",
    out: Annotated[Path | None, typer.Option(help="Output folder (default: synthetic-<task>)")] = None,
    n_train: Annotated[int, typer.Option(min=1, help="Train images")] = 64,
    n_val: Annotated[int, typer.Option(min=1, help="Val images")] = 32,
    imgsz: Annotated[int, typer.Option(min=16, help="Image size in pixels")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    video: Annotated[bool, typer.Option("--video", help="Videos of moving shapes, MOT ground truth")] = False,
    videos: Annotated[int, typer.Option(min=1, help="--video: how many (parallel and crossing paths in turn)")] = 4,
    frames: Annotated[int, typer.Option(min=1, help="--video: frames per video")] = 150,
    fps: Annotated[int, typer.Option(min=1, help="--video: frames per second")] = 15,
) -> None:
    """Write a synthetic dataset of coloured shapes (circle, square, triangle) with exact labels, or with --video
    videos of them moving (MOT-format ground truth beside each, for scoring a tracker)."""
    from yoloforge.ray_app.intake.synth import synth_dataset

    if task not in METRICS_BY_TASK:
        raise SpecError(f"task '{task}' is not one of: {', '.join(METRICS_BY_TASK)}")
    out = out or Path("synthetic-video" if video else f"synthetic-{task}")
    if out.exists() and any(out.iterdir()):
        raise SpecError(f"{out} exists and is not empty", fix="choose another --out; nothing was overwritten")
    if video:
        from yoloforge.ray_app.intake.synth_video import synth_videos

        written = synth_videos(out, videos, frames, fps, seed=seed)
        console.print(f"wrote {len(written)} videos of {frames} frames at {fps} FPS to {out} (ground truth in "
                      f"{out}/<name>/gt/gt.txt, MOT format; crossings of the middle line in <name>/events.json)")
        return
    with progress_bars() as progress:
        root = synth_dataset(out, task, n_train, n_val, imgsz, seed,
                             on_image=lambda: progress("drawing shapes", 1, n_train + n_val))
    console.print(f"wrote {n_train} train + {n_val} val {task} images to {root}")


# --- models ---------------------------------------------------------------------------------------------


@models_app.callback()
@friendly
def models_list(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option(help="Only this task")] = None,
    family: Annotated[str | None, typer.Option(help="Only this family, e.g. yolo11")] = None,
) -> None:
    """List the official models yoloforge can download (and which are cached)."""
    if ctx.invoked_subcommand:
        return
    from yoloforge.ray_app.zoo import cache_dir, zoo

    cached = {p.name for p in cache_dir().glob("*.pt")}
    table = Table(title="Official Ultralytics models (any of them also works as .yaml, trained from scratch)")
    for col in ("family", "detect", "segment", "classify"):
        table.add_column(col)
    rows: dict[str, dict[str, list[str]]] = {}
    for e in zoo():
        if (task and e.task != task) or (family and e.family != family):
            continue
        rows.setdefault(e.family, {}).setdefault(e.task, []).append(e.name + (" *" if e.name in cached else ""))
    for fam, tasks in rows.items():
        table.add_row(fam, *("\n".join(tasks.get(t, [])) or "-" for t in ("detect", "segment", "classify")))
    console.print(table)
    console.print("* = in the cache. Or give model: path/to/best.pt (your own) or model: yolo11n.yaml (from scratch).")


@models_app.command("inspect")
@friendly
def models_inspect(path: Annotated[str, typer.Argument(help="A .pt checkpoint, a .yaml, or an official name")]) -> None:
    """Show a model's task, classes, input size and cost."""
    from yoloforge.ray_app.zoo import resolve_model

    with console.status(f"loading {path}"):
        info = resolve_model(path)
    print_model(info)


def main() -> None:
    """The entry point: the command, then an exit that skips native teardown (see end_process)."""
    try:
        app()  # click's standalone mode always ends in SystemExit, with usage errors already printed
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    end_process(code if isinstance(code, int) else (0 if code is None else 1))


def end_process(code: int) -> None:
    """Run what Python registered for exit (Ray's shutdown, logging's flush, temporary files), flush the
    console, then end without interpreter teardown.

    A command that used Ray, ONNX Runtime, OpenVINO and torch in one process leaves native threads behind
    (Ray's gcs client io and grpc event-engine threads survive ray.shutdown()); C++ static destructors running
    at exit() race them, and `yoloforge demo` once died that way after printing its summary (exit 139). Ray ends
    its own worker processes with os._exit for the same reason. Every file yoloforge writes is closed by then."""
    import atexit
    import os

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
