"""`yoloforge track`: video streams on a run's chosen engine (or a model's: ray_app/track_engine.py), in this
process (local mode) or spread over Ray actors, one per node or one per GPU, each decoding, detecting and tracking
its own streams (frames never leave the actor, so they never touch Ray's object store; only figures travel).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from rich.table import Table
from yoloforge.core.errors import EXIT_INPUT_HAS_ERRORS, YoloforgeError
from yoloforge.ray_app.console import console
from yoloforge.serving.served import ServedModel
from yoloforge.serving.streams.service import Inference, StreamExists, StreamJob, StreamNotFound, StreamService
from yoloforge.serving.streams.sources import SourceError
from yoloforge.serving.streams.tracking import Line, Zone

Placement = Literal["node", "gpu"]


class StreamActor:
    """One node's (or one GPU's) streams: a StreamService on the served engine, behind Ray's actor calls."""

    def __init__(self, served: ServedModel, out_dir: str, lanes: int | None, batch: int | None) -> None:
        self.service = StreamService(Inference.from_served(served, lanes=lanes, batch=batch), out_dir)

    def add(self, job: StreamJob) -> str:
        return self.service.add(job)

    def remove(self, name: str) -> dict[str, Any]:
        return self.service.remove(name)

    def get(self, name: str) -> dict[str, Any]:
        return self.service.get(name)

    def list(self) -> list[dict[str, Any]]:
        return self.service.list()

    def running_names(self) -> list[str]:
        return self.service.running_names()

    def close(self) -> None:
        self.service.close()


class RayStreams:
    """Streams spread over stream actors: a new stream goes to the actor running the fewest; names are unique
    across actors (decided here, where every stream is known)."""

    def __init__(self, actors: list[Any]) -> None:
        self.actors = actors
        self.where: dict[str, Any] = {}
        self.counter = 0
        self.lock = threading.Lock()  # the HTTP routes call from several threads

    def add(self, job: StreamJob) -> str:
        with self.lock:
            return self._add(job)

    def _add(self, job: StreamJob) -> str:
        import dataclasses

        if not job.name:
            self.counter += 1
            while f"stream-{self.counter}" in self.where:
                self.counter += 1
            job = dataclasses.replace(job, name=f"stream-{self.counter}")
        if job.name in self.where and job.name in _get(self.where[job.name].running_names.remote()):
            raise StreamExists(f"a stream named {job.name!r} is already running; remove it first or pick another name")
        loads = _get([a.running_names.remote() for a in self.actors])
        actor = self.actors[min(range(len(self.actors)), key=lambda i: len(loads[i]))]
        name = _get(actor.add.remote(job))  # the actor checks the source: a file may exist on its node only
        self.where[name] = actor
        return name

    def _actor(self, name: str) -> Any:
        if name not in self.where:
            raise StreamNotFound(name)
        return self.where[name]

    def remove(self, name: str) -> dict[str, Any]:
        return _get(self._actor(name).remove.remote(name))

    def get(self, name: str) -> dict[str, Any]:
        return _get(self._actor(name).get.remote(name))

    def list(self) -> list[dict[str, Any]]:
        return [row for rows in _get([a.list.remote() for a in self.actors]) for row in rows]

    def running_names(self) -> list[str]:
        return [n for names in _get([a.running_names.remote() for a in self.actors]) for n in names]

    def close(self) -> None:
        _get([a.close.remote() for a in self.actors])


def _get(refs: Any) -> Any:
    """ray.get, with an actor's own error (a bad source, an unknown stream) raised as itself, not wrapped."""
    import ray

    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


def stream_actors(served: ServedModel, out_dir: Path, per: Placement, lanes: int | None,
                  batch: int | None) -> list[Any]:
    """One actor per alive node (pinned there), or one per GPU of the cluster (one GPU each)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(StreamActor)
    if per == "gpu":
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus == 0:
            raise YoloforgeError("--per gpu: the Ray cluster has no GPU", fix="use --per node (one actor per node)")
        return [remote.options(num_gpus=1, num_cpus=1).remote(served, str(out_dir), lanes, batch)
                for _ in range(gpus)]
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return [remote.options(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(served, str(out_dir), lanes, batch) for n in nodes]


@contextmanager
def open_streams(served: ServedModel, out_dir: Path, *, use_ray: bool = False, address: str | None = None,
                 per: Placement = "node", lanes: int | None = None, batch: int | None = None) -> Iterator[Any]:
    """Streams on a served model: a local StreamService, or RayStreams over actors in a Ray session (its files
    are named by absolute paths, which every actor of one machine or a shared file system reads)."""
    if not use_ray:
        service = StreamService(Inference.from_served(served, lanes=lanes, batch=batch), out_dir)
        try:
            yield service
        finally:
            service.close()
        return
    from yoloforge.ray_app.ray_session import ray_session

    with ray_session(address, dashboard=False):
        streams = RayStreams(stream_actors(served, out_dir, per, lanes, batch))
        try:
            yield streams
        finally:
            streams.close()


def parse_line(text: str, n: int) -> Line:
    name, numbers = _named(text, f"line{n}")
    if len(numbers) != 4:
        raise YoloforgeError(f"--line {text}: a line is four numbers x1,y1,x2,y2 (pixels of the video)",
                             fix="for example --line door=320,0,320,480")
    if numbers[:2] == numbers[2:]:
        raise YoloforgeError(f"--line {text}: its start and end are the same point", fix="give two distinct points")
    return Line(name, (numbers[0], numbers[1]), (numbers[2], numbers[3]))


def parse_zone(text: str, n: int) -> Zone:
    name, numbers = _named(text, f"zone{n}")
    if len(numbers) < 6 or len(numbers) % 2:
        raise YoloforgeError(f"--zone {text}: a zone is at least three points x1,y1,x2,y2,x3,y3,... (pixels)",
                             fix="for example --zone shelf=0,0,200,0,200,150,0,150")
    return Zone(name, tuple((numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)))


def _named(text: str, default: str) -> tuple[str, list[float]]:
    name, _, rest = text.rpartition("=")
    try:
        numbers = [float(v) for v in rest.split(",") if v.strip()]
    except ValueError:
        raise YoloforgeError(f"{text}: the coordinates must be numbers separated by commas",
                             fix="for example door=320,0,320,480") from None
    return name or default, numbers


class StreamsFailed(YoloforgeError):
    """Every stream of a `yoloforge track` run failed: its input was read and could not be used."""

    exit_code = EXIT_INPUT_HAS_ERRORS


def add_all(streams: Any, jobs: list[StreamJob]) -> list[str]:
    try:
        return [streams.add(job) for job in jobs]
    except SourceError as err:
        raise YoloforgeError(str(err), fix=err.fix) from None


def table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="streams")
    targets = any(r["fps_target"] is not None for r in rows)
    for column in ("stream", "state", "fps", *(["target"] if targets else []), "decoded", "processed", "dropped",
                   "age p95 ms", "tracks", "error"):
        t.add_column(column)
    for r in rows:
        target = [_keeping_up(r)] if targets else []
        t.add_row(r["name"], r["state"], f"{r['fps']:.1f}", *target, str(r["decoded"]), str(r["processed"]),
                  str(r["dropped"]), f"{r['frame_age_p95_ms']:.0f}", str(r["tracks_seen"]), r["error"][:60])
    return t


def _keeping_up(row: dict[str, Any]) -> str:
    if row["fps_target"] is None:
        return ""
    verdict = {True: "keeps up", False: "[red]behind[/red]", None: "..."}[row["keeps_up"]]
    return f"{row['fps_target']:g}: {verdict}"


def run_until_done(streams: Any, names: list[str], duration: float | None, every_s: float = 2.0) -> list[dict]:
    """Until every named stream has ended (files at their end), or `duration` seconds, showing their figures."""
    from rich.live import Live

    started = time.monotonic()
    with Live(table(streams.list()), console=console, refresh_per_second=1, transient=False) as live:
        while True:
            rows = {r["name"]: r for r in streams.list()}
            live.update(table(list(rows.values())))
            if all(rows.get(n, {}).get("state") in ("finished", "failed", "removed") for n in names):
                break
            if duration is not None and time.monotonic() - started >= duration:
                break
            time.sleep(every_s)
    console.print()
    return [streams.remove(n) for n in names]


def report_streams(final: list[dict[str, Any]], out_dir: Path) -> None:
    """One line per stream (its whole error when it failed); a run where every stream failed is an error."""
    for row in final:
        if row["state"] == "failed":
            console.print(f"[red]{row['name']} failed[/red]: {row['error']}", highlight=False)
            continue
        folder = out_dir / row["name"]
        target = "" if row["keeps_up"] is None else (
            f" (kept up with its {row['fps_target']:g} FPS target)" if row["keeps_up"] else
            f" ([red]behind its {row['fps_target']:g} FPS target[/red]: its oldest frames were dropped)")
        console.print(f"{row['name']}: {row['processed']} frames tracked, {row['dropped']} dropped, "
                      f"{row['tracks_seen']} tracks, {row['average_fps']:.1f} FPS on average{target}"
                      + (f" -> {folder}" if folder.is_dir() else ""), highlight=False)
    if final and all(row["state"] == "failed" for row in final):
        raise StreamsFailed(f"no stream could be read ({len(final)} failed; reasons above)",
                            fix="give a video file PyAV/FFmpeg can decode, an rtsp:// or http:// URL, or a camera")


def serve_streams(streams: Any, host: str, port: int, duration: float | None) -> None:
    """`yoloforge track --serve`: the streams HTTP API (POST/GET/DELETE /v1/streams, /metrics) until Ctrl-C, or
    for duration seconds."""
    import uvicorn
    from yoloforge.serving.streams.api import build_app

    console.print(f"streams API on http://{host}:{port}/v1/streams (metrics: /metrics); Ctrl-C stops")
    server = uvicorn.Server(uvicorn.Config(build_app(streams), host=host, port=port, log_level="warning"))
    if duration is not None:
        import threading

        threading.Timer(duration, lambda: setattr(server, "should_exit", True)).start()
    server.run()
