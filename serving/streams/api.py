"""The stream service over HTTP (serving/openapi.yaml, tag `streams`): add, list, inspect and remove streams
while the others run, and Prometheus metrics per stream. The same error body, API keys and health routes as
the predict servers.

`Streams` is what the routes need: the local StreamService, or ray_app's router over stream actors.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from yoloforge.serving.http_common import api_keys, authorized, error
from yoloforge.serving.streams.service import StreamExists, StreamJob, StreamNotFound
from yoloforge.serving.streams.sources import SourceError, SourceSpec
from yoloforge.serving.streams.tracking import Line, TrackerSettings, Zone

MAX_STREAMS = 64  # per service: beyond it a new stream is refused with 503 (each holds a reader thread)
MAX_COORDINATE = 100_000  # pixels: a line or zone point beyond is a mistake (and would overflow the counters)


class Streams(Protocol):
    def add(self, job: StreamJob) -> str: ...
    def remove(self, name: str) -> dict[str, Any]: ...
    def get(self, name: str) -> dict[str, Any]: ...
    def list(self) -> list[dict[str, Any]]: ...
    def running_names(self) -> list[str]: ...


Coordinate = Annotated[float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]  # strict: a JSON array, not a tuple
STRICT = ConfigDict(extra="forbid", strict=True)  # what the spec says: 0 is not a boolean, "1" not a number


class LineBody(BaseModel):
    model_config = STRICT
    name: str = Field(min_length=1, max_length=64)
    start: Point
    end: Point

    @model_validator(mode="after")
    def _has_length(self) -> LineBody:
        if self.start == self.end:
            raise ValueError("a line's start and end must differ")
        return self


class ZoneBody(BaseModel):
    model_config = STRICT
    name: str = Field(min_length=1, max_length=64)
    points: list[Point] = Field(min_length=3, max_length=64)


class StreamBody(BaseModel):
    """POST /v1/streams (see StreamRequest in serving/openapi.yaml)."""

    model_config = STRICT
    source: str = Field(min_length=1, max_length=2048)
    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    live: bool | None = None
    max_fps: float | None = Field(default=None, gt=0, le=1000)
    fps_target: float | None = Field(default=None, gt=0, le=1000)
    loop: bool = False
    lines: list[LineBody] = Field(default_factory=list, max_length=16)
    zones: list[ZoneBody] = Field(default_factory=list, max_length=16)
    annotate: bool = False
    lost_s: float = Field(default=1.0, gt=0, le=60)
    classes: list[str] = Field(default_factory=list, max_length=1000)

    def job(self) -> StreamJob:
        return StreamJob(
            source=SourceSpec(self.source, live=self.live, max_fps=self.max_fps, loop=self.loop,
                              fps_target=self.fps_target),
            name=self.name or "", lines=tuple(Line(x.name, (x.start[0], x.start[1]), (x.end[0], x.end[1]))
                                              for x in self.lines),
            zones=tuple(Zone(z.name, tuple((p[0], p[1]) for p in z.points)) for z in self.zones),
            annotate=self.annotate, tracker=TrackerSettings(lost_s=self.lost_s), classes=tuple(self.classes))


class StreamCollector:
    """Per-stream figures read at scrape time from the streams' own counters (so local and Ray modes agree)."""

    def __init__(self, streams: Streams) -> None:
        self.streams = streams

    def collect(self) -> Any:
        rows = self.streams.list()
        families = {
            "fps": GaugeMetricFamily("yoloforge_stream_fps", "Frames tracked per second, last 5 s", labels=["stream"]),
            "age": GaugeMetricFamily("yoloforge_stream_frame_age_p95_seconds",
                                     "95th percentile of decode-to-tracked time, last 5 s", labels=["stream"]),
            "tracks": GaugeMetricFamily("yoloforge_stream_active_tracks", "Objects tracked in the last frame",
                                        labels=["stream"]),
            "up": GaugeMetricFamily("yoloforge_stream_up", "1 while the source delivers frames", labels=["stream"]),
            "keeps_up": GaugeMetricFamily("yoloforge_stream_keeps_up", "1 while a stream with an FPS target tracks "
                                          "at it, 0 while it falls behind (its oldest frames are dropped)",
                                          labels=["stream"]),
            "decoded": CounterMetricFamily("yoloforge_stream_frames_decoded", "Frames decoded", labels=["stream"]),
            "processed": CounterMetricFamily("yoloforge_stream_frames_processed", "Frames tracked",
                                             labels=["stream"]),
            "dropped": CounterMetricFamily("yoloforge_stream_frames_dropped",
                                           "Frames replaced by newer ones before the engine took them",
                                           labels=["stream"]),
            "reconnects": CounterMetricFamily("yoloforge_stream_reconnects", "Times the source came back",
                                              labels=["stream"]),
        }
        for row in rows:
            if row["state"] in ("finished", "removed"):
                continue
            label = [row["name"]]
            families["fps"].add_metric(label, row["fps"])
            families["age"].add_metric(label, row["frame_age_p95_ms"] / 1000)
            families["tracks"].add_metric(label, row["active_tracks"])
            families["up"].add_metric(label, 1.0 if row["state"] == "running" else 0.0)
            if row["keeps_up"] is not None:
                families["keeps_up"].add_metric(label, 1.0 if row["keeps_up"] else 0.0)
            for key in ("decoded", "processed", "dropped", "reconnects"):
                families[key].add_metric(label, row[key])
        yield from families.values()


def build_app(streams: Streams, *, max_streams: int = MAX_STREAMS) -> FastAPI:
    app = FastAPI(title="yoloforge streams", docs_url=None, redoc_url=None, openapi_url=None)
    keys = api_keys()
    registry = CollectorRegistry()
    registry.register(StreamCollector(streams))  # type: ignore[arg-type]

    def allowed(request: Request) -> bool:
        return authorized(request.headers.get("authorization", ""), keys)

    def unauthorized() -> JSONResponse:
        return error(401, "unauthorized", "missing or wrong API key: send Authorization: Bearer <key>",
                     {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_parameter")
        message, headers = str(exc.detail), dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow names the first matching route's methods only; a path served by two routes
            # (GET and POST /v1/streams) must list both (RFC 9110)
            allow = ", ".join(sorted({m for route in app.routes if isinstance(route, APIRoute)
                                      and route.path_regex.match(request.url.path) for m in route.methods}))
            headers["Allow"] = allow
            message = f"{request.method} {request.url.path} is not allowed; use {allow}"
        return error(exc.status_code, code, message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()[:3])
        return error(400, "bad_parameter", where)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        return error(500, "internal", f"{type(exc).__name__}: {exc} (a bug; see the service's log)")

    @app.post("/v1/streams", status_code=201)
    async def add_stream(body: StreamBody, request: Request) -> Response:
        if not allowed(request):
            return unauthorized()
        if len(streams.running_names()) >= max_streams:
            return error(503, "overloaded", f"this service runs at most {max_streams} streams; remove one first",
                         {"Retry-After": "5"})
        try:
            name = await asyncio.to_thread(streams.add, body.job())
        except StreamExists as exc:
            return error(409, "conflict", str(exc))
        except SourceError as exc:
            return error(400, "bad_parameter", str(exc))
        return JSONResponse(await asyncio.to_thread(streams.get, name), status_code=201)

    @app.get("/v1/streams")
    async def list_streams(request: Request) -> Response:
        if not allowed(request):
            return unauthorized()
        return JSONResponse({"streams": await asyncio.to_thread(streams.list)})

    @app.get("/v1/streams/{name}")
    async def get_stream(name: str, request: Request) -> Response:
        if not allowed(request):
            return unauthorized()
        try:
            return JSONResponse(await asyncio.to_thread(streams.get, name))
        except StreamNotFound:
            return error(404, "not_found", f"no stream named {name!r}; GET /v1/streams lists them")

    @app.delete("/v1/streams/{name}")
    async def remove_stream(name: str, request: Request) -> Response:
        if not allowed(request):
            return unauthorized()
        try:
            return JSONResponse(await asyncio.to_thread(streams.remove, name))
        except StreamNotFound:
            return error(404, "not_found", f"no stream named {name!r}; GET /v1/streams lists them")

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        text = await asyncio.to_thread(generate_latest, registry)
        return Response(text, media_type="text/plain; version=0.0.4")

    return app
