"""The `yoloforge` command line.

Every command is registered here, in the order `yoloforge --help` shows them; each body only parses its flags and
calls a stage or a module that does the work: ray_app/jobflags.py builds a job from flags and questions,
ray_app/exits.py turns what a command raised into its exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from yoloforge import __version__
from yoloforge.core.errors import (
    EXIT_CODES,
    SpecError,
)
from yoloforge.core.rundir import RunDir
from yoloforge.ray_app.cli_data import data_app
from yoloforge.ray_app.cli_models import models_app
from yoloforge.ray_app.cli_track import track
from yoloforge.ray_app.console import console
from yoloforge.ray_app.exits import end_process, friendly
from yoloforge.ray_app.jobflags import check_task, job_from_flags, render_template, save_built_job
from yoloforge.ray_app.spec import json_schema, parse_job

app = typer.Typer(help="State the accuracy and speed you need from a YOLO model; yoloforge does the rest.",
                  epilog=EXIT_CODES,
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

def _version(value: bool) -> None:
    if value:
        console.print(f"yoloforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False) -> None:
    """yoloforge: model + data + targets in, an optimised inference service out."""


# --- init -----------------------------------------------------------------------------------------------


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
    check_task(task)
    if path.exists() and not force:
        raise SpecError(f"{path} already exists", fix="choose another path or pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_template(model=model, task=task, data=data))
    console.print(f"wrote {path}: edit data: and targets:, then run `yoloforge run {path}`")


# --- run / demo -----------------------------------------------------------------------------------------


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

    raw = job_from_flags(job, asking=not yes and (interactive or sys.stdin.isatty()), model=model, task=task,
                         name=name, data=data, target=target, fps=fps, device=device, split_val=split_val,
                         runs_dir=runs_dir, address=address)
    spec = parse_job(raw, str(job) if job else "the job built from flags")
    if job is None and not save_built_job(spec, write_job, yes=yes, asking=not yes and (interactive or
                                                                                        sys.stdin.isatty())):
        return
    run_job(spec, SearchChoices(interactive=not yes and (interactive or sys.stdin.isatty()),
                                more_generations=more_generations), until=until, from_stage=from_stage)


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

    resume_run(run_dir, SearchChoices(interactive=not yes and sys.stdin.isatty(), more_generations=more_generations),
               from_stage=from_stage)


@app.command()
@friendly
def bench(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (runs/<name>) with best/best.pt")],
) -> None:
    """Benchmark the run's best weights on every inference engine and choose the config (the engines stage)."""
    from yoloforge.ray_app.pipeline import bench_run

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
    platform: Annotated[str | None, typer.Option(help="The machine it is for: linux/amd64, linux/arm64 "
                                                      "(Raspberry Pi 5, Graviton) or jetson (JetPack 6); default "
                                                      "this machine's")] = None,
) -> None:
    """Write the deployable bundle: Go server binary, model, config.yaml, Dockerfiles, docker-compose.yml."""
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.export import stage_export

    state = RunState.open(run_dir)
    state.override("export", max_batch=max_batch_size, max_wait_ms=batch_wait_ms, platform=platform)
    stage_export(state, out.resolve() if out else None, build=build, check=check)


app.command()(track)


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

    check_task(task)
    run_demo(runs_dir, task, dashboard)


# --- data -----------------------------------------------------------------------------------------------


def main() -> None:
    """The entry point: the command, then an exit that skips native teardown (see end_process)."""
    try:
        app()  # click's standalone mode always ends in SystemExit, with usage errors already printed
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    end_process(code if isinstance(code, int) else (0 if code is None else 1))


if __name__ == "__main__":
    main()
