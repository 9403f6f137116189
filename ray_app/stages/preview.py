"""Stage 4: the Ray Serve preview of the selected engine (`yoloforge preview RUN_DIR`)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir
from yoloforge.ray_app.console import console
from yoloforge.ray_app.ray_session import ray_session
from yoloforge.ray_app.spec import load_run_job
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict


def preview_options(run_dir: Path, max_batch_size: int | None = None, batch_wait_ms: float | None = None) -> dict:
    from yoloforge.serving.served import ServedModel

    spec = load_run_job(RunDir.open(run_dir))
    served = ServedModel.from_run(run_dir)  # NotServable says which command to run first
    if served.note:
        console.print(f"[yellow]{served.note}[/yellow]")
    p = spec.preview
    return {"max_batch_size": max_batch_size or p.max_batch_size or max(served.config.batch, 8),
            "batch_wait_ms": p.batch_wait_ms if batch_wait_ms is None else batch_wait_ms,
            "replicas": p.replicas, "max_replicas": p.max_replicas,
            "target_ongoing_requests": p.target_ongoing_requests, "cpu": p.cpu,
            "gpu": p.gpu if served.config.device.startswith("cuda") else 0,
            "max_queued_requests": p.max_queued_requests, "max_body_mb": p.max_body_mb,
            "concurrent_batches": p.concurrent_batches, "host": p.host, "port": p.port}


def app_builder(args: dict) -> object:
    """The preview application for `serve run yoloforge.ray_app.stages.preview:app_builder run_dir=...` and a
    RayService's serveConfigV2 (cluster/kuberay/rayservice.yaml): run_dir is required, the rest override the run's
    job.yaml preview settings (max_batch_size, batch_wait_ms, replicas, max_replicas, gpu, cpu, ...)."""
    from yoloforge.serving.preview import build_app

    args = dict(args)
    run_dir = args.pop("run_dir", None)
    if not run_dir:
        raise YoloforgeError("app_builder needs run_dir: the run directory whose selection.json to serve")
    options = preview_options(Path(run_dir), args.pop("max_batch_size", None), args.pop("batch_wait_ms", None))
    for served_by_serve in ("host", "port"):  # Serve's own HTTP options decide where it listens
        options.pop(served_by_serve)
    floats = ("target_ongoing_requests", "cpu", "gpu", "max_body_mb")
    options.update({k: float(v) if k in floats else int(v) for k, v in args.items()})
    return build_app(str(run_dir), **options)


def run_preview(run_dir: Path, *, host: str | None = None, port: int | None = None,
                max_batch_size: int | None = None, batch_wait_ms: float | None = None,
                duration: float | None = None) -> None:
    from yoloforge.serving import preview

    run = RunDir.open(run_dir)
    spec = load_run_job(run)
    options = preview_options(run_dir, max_batch_size, batch_wait_ms)
    job_host, job_port = options.pop("host"), options.pop("port")
    host, port = host or job_host, port or job_port
    console.rule("[bold]4 preview[/bold]")
    preview.use_haproxy_ingress()
    with ray_session(spec.resources.address, spec.resources.dashboard):
        with console.status("starting the Ray Serve preview (loading the engine)"):
            try:
                url = preview.start(str(run_dir.resolve()), host=host, port=port, **options)
            except Exception as err:
                raise YoloforgeError(f"the preview did not start: {type(err).__name__}: {str(err)[:500]}",
                                     fix=f"check that port {port} is free (--port) and the run's engine loads "
                                         f"(`yoloforge bench {run_dir}`)") from None
        selection = run.read_selection() or {}
        chosen = selection.get("chosen") or selection.get("closest") or {}
        console.print(f"[green]Preview ready[/green] at {url}  ({chosen.get('key')}, dynamic batching up to "
                      f"{options['max_batch_size']} images, {options['batch_wait_ms']:g} ms wait)")
        console.print(f"  curl -s -X POST --data-binary @image.jpg -H 'Content-Type: image/jpeg' "
                      f"'{url}/v1/predict?conf=0.25'")
        console.print(f"  model: {url}/v1/model   metrics: {url}/metrics   stop: Ctrl-C")
        try:
            deadline = time.monotonic() + duration if duration else None
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("stopping the preview")
        finally:
            preview.stop()
    console.print("preview stopped")


def check_preview(run_dir: Path) -> dict:
    """Start the preview, answer one validation image through HTTP, stop: proves the endpoint works end to end."""
    import httpx
    from yoloforge.serving import preview

    run = RunDir.open(run_dir)
    spec = load_run_job(run)
    options = preview_options(run_dir)
    host, port = options.pop("host"), options.pop("port")
    image = sample_image(run_dir)
    if image is None:
        raise YoloforgeError(f"no image in the run's clean dataset ({run.clean_dir()}) to try the preview with")
    console.rule("[bold]4 preview[/bold]")
    port = port if _port_free(host, port) else 0
    preview.use_haproxy_ingress()
    with ray_session(spec.resources.address, dashboard=False), \
            console.status("starting the Ray Serve preview and sending it one image"):
        url = preview.start(str(run_dir.resolve()), host=host, port=port or free_port(), **options)
        try:
            content_type = "image/png" if image.suffix.lower() == ".png" else "image/jpeg"
            answer = httpx.post(f"{url}/v1/predict", content=image.read_bytes(), timeout=60,
                                headers={"Content-Type": content_type})
        finally:
            preview.stop()
    if answer.status_code != 200:
        raise YoloforgeError(f"the preview answered {answer.status_code}: {answer.text[:300]}")
    body = answer.json()
    console.print(f"[green]Preview answered[/green] {image.name}: {describe_answer(image, body)} in "
                  f"{body['timing_ms']['total']:.1f} ms (served at {url} while it ran; `yoloforge preview {run_dir}` "
                  "keeps it up)")
    return body


def sample_image(run_dir: Path) -> Path | None:
    """A validation image of the run's clean dataset (the first JPEG or PNG, else any image): what the preview
    and the bundle are tried with, and checked against its labels."""
    clean = RunDir(run_dir).clean_dir()
    if clean is None or not clean.is_dir():
        return None
    images = [p for p in sorted(clean.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    val = [p for p in images if "val" in p.relative_to(clean).parts]
    return next(iter(val or images), None)


def describe_answer(image: Path, body: dict) -> str:
    """What an answer found, against the image's own label: '3 detections; 3 of 3 labelled objects found ...'."""
    from yoloforge.engines.accuracy import labels_found

    if "top" in body:
        top = body["top"][0]["class_name"] if body["top"] else None
        return f"top class {top} ({'right' if top == image.parent.name else 'labelled ' + image.parent.name})"
    detections = body.get("detections", [])
    parts = list(image.parts)
    index = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if index is None:
        return f"{len(detections)} detections"
    label = Path(*parts[:index], "labels", *parts[index + 1:]).with_suffix(".txt")
    text = label.read_text() if label.is_file() else ""
    hit, total = labels_found(text, body["image"]["width"], body["image"]["height"], detections)
    return f"{len(detections)} detections; {hit} of {total} labelled objects found (IoU >= 0.5, same class)"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PreviewStage:
    name = "preview"

    def enabled(self, state: RunState) -> bool:
        return state.spec.preview.enabled

    def inputs(self, state: RunState) -> None:
        return None  # a check that the endpoint answers: it runs every time, in seconds

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        return False

    def run(self, state: RunState, verdict: Verdict) -> bool:
        check_preview(state.run.path)
        return True


STAGE = PreviewStage()
