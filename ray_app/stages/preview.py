"""Stage 4: the Ray Serve preview of the selected engine (`yoloforge preview RUN_DIR`)."""

from __future__ import annotations

import time
from pathlib import Path

from yoloforge.core.errors import YoloforgeError
from yoloforge.core.ports import free_port, port_free
from yoloforge.engines.selection import Selection
from yoloforge.ray_app.console import console
from yoloforge.ray_app.ray_session import ray_session
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict


def preview_options(state: RunState) -> dict:
    """What the preview is started with: the job's preview: settings, over the served engine's batch."""
    from yoloforge.serving.served import ServedModel

    served = ServedModel.from_run(state.run.path)  # NotServable says which command to run first
    if served.note:
        console.print(f"[yellow]{served.note}[/yellow]")
    p = state.spec.preview
    return {"max_batch_size": p.max_batch_size or max(served.config.batch, 8), "batch_wait_ms": p.batch_wait_ms,
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
    state = RunState.open(Path(run_dir))
    state.override("preview", max_batch_size=args.pop("max_batch_size", None),
                   batch_wait_ms=args.pop("batch_wait_ms", None))
    options = preview_options(state)
    for served_by_serve in ("host", "port"):  # Serve's own HTTP options decide where it listens
        options.pop(served_by_serve)
    floats = ("target_ongoing_requests", "cpu", "gpu", "max_body_mb")
    options.update({k: float(v) if k in floats else int(v) for k, v in args.items()})
    return build_app(str(run_dir), **options)


def run_preview(state: RunState, *, host: str | None = None, port: int | None = None,
                duration: float | None = None) -> None:
    """`yoloforge preview RUN_DIR`: the preview until Ctrl-C (or duration seconds)."""
    from yoloforge.serving import preview

    run, spec = state.run, state.spec
    options = preview_options(state)
    job_host, job_port = options.pop("host"), options.pop("port")
    host, port = host or job_host, port or job_port
    console.rule("[bold]4 preview[/bold]")
    preview.use_haproxy_ingress()
    with ray_session(spec.resources.address, spec.resources.dashboard):
        with console.status("starting the Ray Serve preview (loading the engine)"):
            try:
                url = preview.start(str(run.path.resolve()), host=host, port=port, **options)
            except Exception as err:
                raise YoloforgeError(f"the preview did not start: {type(err).__name__}: {str(err)[:500]}",
                                     fix=f"check that port {port} is free (--port) and the run's engine loads "
                                         f"(`yoloforge bench {run}`)") from None
        selection = Selection.of(run.read_selection())
        served = (selection.served if selection else None) or {}
        console.print(f"[green]Preview ready[/green] at {url}  ({served.get('key')}, dynamic batching up to "
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


def stage_preview(state: RunState) -> dict:
    """Start the preview, answer one validation image through HTTP, stop: proves the endpoint works end to end.
    Returns the answer."""
    import httpx
    from yoloforge.serving import preview
    from yoloforge.serving.answers import describe_answer

    run, spec = state.run, state.spec
    options = preview_options(state)
    host, port = options.pop("host"), options.pop("port")
    image = run.sample_image()
    if image is None:
        raise YoloforgeError(f"no image in the run's clean dataset ({run.clean_dir()}) to try the preview with")
    console.rule("[bold]4 preview[/bold]")
    port = port if port_free(host, port) else 0
    preview.use_haproxy_ingress()
    with ray_session(spec.resources.address, dashboard=False), \
            console.status("starting the Ray Serve preview and sending it one image"):
        url = preview.start(str(run.path.resolve()), host=host, port=port or free_port(), **options)
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
                  f"{body['timing_ms']['total']:.1f} ms (served at {url} while it ran; `yoloforge preview {run}` "
                  "keeps it up)")
    return body


class PreviewStage:
    name = "preview"

    def enabled(self, state: RunState) -> bool:
        return state.spec.preview.enabled

    def inputs(self, state: RunState) -> None:
        return None  # a check that the endpoint answers: it runs every time, in seconds

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        return False

    def run(self, state: RunState, verdict: Verdict) -> bool:
        stage_preview(state)
        return True


STAGE = PreviewStage()
