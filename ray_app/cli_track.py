"""`yoloforge track`: video streams on a run's chosen engine, or on any detection model (--model) with the engine a
short engines stage on the video's frames chooses (ray_app/track_engine.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from yoloforge.core.errors import SpecError
from yoloforge.ray_app.exits import friendly

if TYPE_CHECKING:
    from yoloforge.serving.served import ServedModel

DEFAULT_OUT = Path("tracks")  # --model without --out: ./tracks/<stream>/, as Ultralytics writes under ./runs


@friendly
def track(
    run_dir: Annotated[Path | None, typer.Argument(help="The run directory (runs/<name>) with selection.json; or "
                                                        "--model instead")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="A video file, rtsp/http URL or camera "
                                                     "(0, /dev/video0); repeat for more streams")] = None,
    model: Annotated[str | None, typer.Option(help="Track with this model, no run needed: an official name "
                                                   "(yolo11n), a .pt or an Ultralytics .onnx")] = None,
    out: Annotated[Path | None, typer.Option(help="Where each stream's outputs go (default RUN_DIR/tracks, or "
                                                  "./tracks with --model)")] = None,
    live: Annotated[bool | None, typer.Option("--live/--recorded", help="Keep only the newest frame (default: "
                                              "live for URLs and cameras, recorded for files)")] = None,
    max_fps: Annotated[float | None, typer.Option(min=0.1, help="Read files no faster; skip a live source's surplus")]
    = None,
    fps_target: Annotated[float | None, typer.Option(min=0.1, help="FPS each stream must keep up with: files are "
                                                     "delivered at it, each stream says whether it keeps up, and "
                                                     "frames it cannot keep up with are dropped oldest-first")]
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
    """Track objects in video streams with a run's chosen engine, or any detection model's (--model): IDs per
    stream, line and zone counts, MOT tracks, JSON lines and an annotated MP4 per stream, per-stream FPS."""
    from dataclasses import replace

    from yoloforge.ray_app.track import (
        add_all,
        open_streams,
        parse_line,
        parse_zone,
        report_streams,
        run_until_done,
        serve_streams,
    )
    from yoloforge.serving.streams.service import StreamJob
    from yoloforge.serving.streams.sources import SourceSpec
    from yoloforge.serving.streams.tracking import TrackerSettings

    if (run_dir is None) == (model is None):
        raise SpecError("give a run directory or --model, one of the two" if run_dir is None else
                        f"both {run_dir} and --model {model} were given",
                        fix="yoloforge track runs/<name> --source video.mp4, or yoloforge track --model yolo11n.pt "
                            "--source video.mp4")
    if not source and not serve:
        raise SpecError("no --source given", fix="name a video: yoloforge track RUN_DIR --source video.mp4 "
                                                "(or --serve to add streams over HTTP)")
    if per not in ("node", "gpu"):
        raise SpecError(f"--per {per}: expected node or gpu", fix="--per node or --per gpu")
    lines = tuple(parse_line(text, i + 1) for i, text in enumerate(line or []))
    zones = tuple(parse_zone(text, i + 1) for i, text in enumerate(zone or []))
    specs = [SourceSpec(url, live=live, max_fps=max_fps, loop=loop, fps_target=fps_target) for url in source or []]
    # a file is named by its absolute path: Ray's actors do not share this shell's working directory
    specs = [s if s.is_url or s.is_camera else replace(s, url=str(Path(s.url).resolve())) for s in specs]
    wanted = tuple(c.strip() for c in (classes or "").split(",") if c.strip())
    jobs = [StreamJob(spec, lines=lines, zones=zones, annotate=annotate, tracker=TrackerSettings(lost_s=lost_s),
                      classes=wanted) for spec in specs]
    if model is not None:
        out_dir = (out or DEFAULT_OUT).resolve()
        served = _model_served(model, specs[0].url if specs else None, out_dir)
    else:
        from yoloforge.core.rundir import RunDir
        from yoloforge.serving.served import ServedModel

        run = RunDir.open(run_dir)  # type: ignore[arg-type]
        out_dir = (out or run.tracks).resolve()
        # a run with nothing to serve raises NotServable, whose fix names the command to run first
        served = ServedModel.from_run(run.path)
    with open_streams(served, out_dir, use_ray=use_ray, address=address, per=per, lanes=lanes) as streams:  # type: ignore[arg-type]
        names = add_all(streams, jobs)
        if serve:
            serve_streams(streams, host, port, duration)
            return
        final = run_until_done(streams, names, duration)
    report_streams(final, out_dir)


def _model_served(model: str, first_source: str | None, out_dir: Path) -> ServedModel:
    """The model resolved and its engine chosen on the first source's frames (speed only: no labels), on the
    first CUDA GPU torch sees, else the CPU."""
    from yoloforge.ray_app.benchmark.plan import resolve_device
    from yoloforge.ray_app.track_engine import TIMED_FRAMES, choose_track_engine, first_frames, resolve_track_model

    chosen = resolve_track_model(model)
    frames = first_frames(first_source, TIMED_FRAMES, chosen.facts.imgsz)
    return choose_track_engine(chosen, frames, resolve_device("auto"), out_dir)
