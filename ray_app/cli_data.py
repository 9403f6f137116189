"""`yoloforge data`: check a dataset (explaining every problem; the user's files are only read), or write a
synthetic one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from yoloforge.core.errors import EXIT_INPUT_HAS_ERRORS, SpecError
from yoloforge.ray_app.console import console, print_report, progress_bars
from yoloforge.ray_app.exits import friendly
from yoloforge.ray_app.jobflags import check_task

data_app = typer.Typer(help="Check a dataset, or make a synthetic one.", no_args_is_help=True)


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

    if task is not None:
        check_task(task)
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

    check_task(task)
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
