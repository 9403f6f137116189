"""The bundle's own binary, run natively: started until ready, sent one image, and measured under load (what the
export reports and the engines stage ranks configs by)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from yoloforge.serving.bundle.plan import ServerSettings
from yoloforge.serving.bundle.toolchain import SERVER, BundleError
from yoloforge.serving.bundle.write import bundle_platform, export_bundle
from yoloforge.serving.served import ServedModel

# the delivery measurement: long enough for a steady rate, short beside the stages before it
DELIVERY_S = 5.0
DELIVERY_CLIENTS = 16
DELIVERY_FLOOR = 0.9  # below this share of the promise, the gap is printed as a warning with its cause
EMULATED_SLOWDOWN = 5  # how much longer a bundle's binary may take under qemu-user (measured: 2-4x to be ready)

@contextmanager
def running(command: list[str], env: dict[str, str], log: Path, url: str, ready: str, *, what: str,
            ready_timeout_s: float, cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run command (its output appended to log) until url + ready answers 200; stop it with SIGTERM at the end,
    then SIGKILL if it does not stop (the caller can check the exit status: 0 is a clean, drained shutdown). A
    command that exits first, or is not ready in time, is a BundleError with the end of its log."""
    import httpx

    with open(log, "ab") as out:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise BundleError(f"{what} exited with status {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}{ready}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BundleError(f"{what} was not ready in {ready_timeout_s:g} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def bundle_process(bundle_dir: Path, env: dict[str, str], log: Path, port: int,
                   ready_timeout_s: float = 60) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run the bundle's own binary as a user would (serve -config config.yaml) until /readyz says loaded; stop it
    at the end (running). A bundle built for another architecture runs under qemu-user, given EMULATED_SLOWDOWN
    times longer to get ready."""
    platform = bundle_platform(bundle_dir)
    if not platform.native:
        ready_timeout_s *= EMULATED_SLOWDOWN
    emulated = {} if platform.native else platform.emulation_env()
    full_env = {**os.environ, **emulated, "YOLOFORGE_LISTEN": f"127.0.0.1:{port}", **env}
    url = f"http://127.0.0.1:{port}"
    command = [*platform.command(str(bundle_dir / "bin" / SERVER)), "serve", "-config", str(bundle_dir / "config.yaml")]
    with running(command, full_env, log, url, "/readyz", what="the server", ready_timeout_s=ready_timeout_s) as proc:
        yield proc, url


@contextmanager
def stream_service_process(bundle_dir: Path, out: Path, log: Path, port: int, *, first_paths: Sequence[str] = (),
                           ready_timeout_s: float = 120) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run the bundle's stream service natively as its image lays it out (`python -S`, the bundle's streams/app
    and the installed packages on the path, no checkout; first_paths before them) until /healthz answers; stop it
    at the end (running). The Go server finds it at the URL given (YOLOFORGE_STREAMS_URL)."""
    paths = [*first_paths, str(bundle_dir / "streams" / "app"), sysconfig.get_paths()["purelib"],
             sysconfig.get_paths()["platlib"]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "MPLCONFIGDIR": "/tmp/matplotlib"}
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-S", "-m", "yoloforge.serving.streams.bundled", str(bundle_dir / "config.yaml"),
               "--listen", f"127.0.0.1:{port}", "--out", str(out)]
    with running(command, env, log, url, "/healthz", what="the stream service", ready_timeout_s=ready_timeout_s,
                 cwd=out.parent) as proc:
        yield proc, url


def check_bundle(bundle_dir: Path, image: Path, port: int, *, load_s: float = 0.0,
                 clients: int = 16) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Start the bundle's binary natively (no Redis, no Postgres, a one-off key), send it one image; with load_s,
    also measure what it delivers under load (delivery); stop it. Returns the answer and the delivery (None for a
    bundle run under emulation: its speed there says nothing of the device's)."""
    import secrets

    import httpx

    key = secrets.token_urlsafe(24)
    env = {"YOLOFORGE_REDIS_ENABLED": "false", "YOLOFORGE_POSTGRES_ENABLED": "false", "YOLOFORGE_API_KEYS": key}
    log = bundle_dir.parent / f".{bundle_dir.name}-check.log"
    log.unlink(missing_ok=True)
    content_type = "image/png" if image.suffix.lower() == ".png" else "image/jpeg"
    delivered = None
    with bundle_process(bundle_dir, env, log, port) as (proc, url):
        answer = httpx.post(f"{url}/v1/predict", content=image.read_bytes(), timeout=60,
                            headers={"Content-Type": content_type, "Authorization": f"Bearer {key}"})
        if answer.status_code == 200 and load_s > 0 and bundle_platform(bundle_dir).native:
            imgsz = int(yaml.safe_load((bundle_dir / "config.yaml").read_text())["model"]["imgsz"])
            delivered = delivery(url, key, imgsz, load_s, clients, proc.pid)
    if answer.status_code != 200:
        raise BundleError(f"the bundle's server answered {answer.status_code}: {answer.text[:300]} (log: {log})")
    log.unlink(missing_ok=True)
    return answer.json(), delivered


def measure_delivery(run_dir: str | Path, served: ServedModel, image: Path, port: int, *, seconds: float,
                     clients: int, settings: ServerSettings) -> dict[str, Any]:
    """What the bundle of one measured configuration delivers, measured as the export measures its own (a
    throwaway bundle beside the run, started natively, removed after): the engines stage ranks configs by it."""
    scratch = Path(tempfile.mkdtemp(prefix=".delivery-", dir=run_dir))
    try:
        bundle = export_bundle(run_dir, scratch / "bundle", settings, served=served)
        _, delivered = check_bundle(bundle.out_dir, image, port, load_s=seconds, clients=clients)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert delivered is not None  # check_bundle measures whenever load_s > 0
    return delivered


def server_cpu_s(pid: int) -> float:
    """The server process's CPU time so far (user + system, every thread), in seconds."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def delivery(url: str, key: str, imgsz: int, seconds: float, clients: int, pid: int) -> dict[str, Any]:
    """What a running server delivers: uncached RPS and latency at this many clients (images at the model's
    size, bench_server's method, short), the server's own CPU time per answered request over that load (what
    it costs a machine, whatever the load generator's cores), and where one image's time goes (the server's own
    stage timings)."""
    import asyncio

    from yoloforge.serving.loadgen import run_load, synthetic_images

    images = synthetic_images(64, imgsz, seed=7)  # the cache is off: a repeated image still runs the model
    cpu_before = server_cpu_s(pid)
    result = asyncio.run(run_load(url, images, concurrency=clients, duration=seconds, api_key=key))
    cpu_ms = 1000 * (server_cpu_s(pid) - cpu_before) / max(result.ok, 1)
    stages = stage_times(url, key, images[:8])
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "clients": clients,
            "seconds": seconds, "errors": int(sum(result.errors.values())), "cpu_ms_per_request": cpu_ms,
            "stages_ms": {name: sum(v) / len(v) for name, v in stages.items()}}


def stage_times(url: str, key: str, images: list[tuple[bytes, str]]) -> dict[str, list[float]]:
    """The server's own milliseconds per stage (its answers' timing_ms) for these images, sent one at a time."""
    import httpx

    stages: dict[str, list[float]] = {}
    for body, content_type in images:
        timing = httpx.post(f"{url}/v1/predict", content=body, timeout=60,
                            headers={"Content-Type": content_type, "Authorization": f"Bearer {key}"}).json()
        for name, ms in timing.get("timing_ms", {}).items():
            stages.setdefault(name, []).append(float(ms))
    return stages
