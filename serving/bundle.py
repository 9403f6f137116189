"""`yoloforge export`: the deployable bundle — the Go server compiled from serving/gateway, the chosen model as
ONNX, config.yaml, Dockerfiles, docker-compose.yml (api + redis + postgres) and a README.

The Go server runs ONNX Runtime in process, with the execution provider of the chosen engine: CPU, OpenVINO
(ONNX Runtime's OpenVINO build, whose libraries the bundle ships), CUDA or TensorRT. A chosen engine it cannot
run (PyTorch) is served as the same model and precision on ONNX Runtime, and the bundle says so."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yoloforge.core.rundir import RunDir, read_parquet
from yoloforge.engines.base import EngineConfig
from yoloforge.engines.lanes import engine_lanes
from yoloforge.serving.served import ServedModel

GATEWAY = Path(__file__).resolve().parent / "gateway"
TEMPLATES = Path(__file__).resolve().parent / "templates"
ORT_GPU_VERSION = "1.31.1"  # newest onnxruntime-gpu on PyPI; the CUDA image's wheel is pinned by this hash
ORT_GPU_WHEEL = f"onnxruntime_gpu-{ORT_GPU_VERSION}-cp312-cp312-manylinux_2_28_x86_64.whl"
ORT_GPU_SHA256 = "05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7"
SERVER = "yoloforge-server"
# ONNX Runtime's OpenVINO build: the newest onnxruntime-openvino on PyPI, whose C API (version 24) is the one the
# server's onnxruntime_go speaks. The bundle ships these of its wheel's libraries (CPU plugin only, 127 MB).
OPENVINO_ORT_VERSION = "1.24.1"
OPENVINO_LIBRARIES = ("libonnxruntime.so.1.24.1", "libonnxruntime_providers_shared.so",
                      "libonnxruntime_providers_openvino.so", "libopenvino.so.2541",
                      "libopenvino_onnx_frontend.so.2541", "libopenvino_intel_cpu_plugin.so", "libtbb.so.12")


class BundleError(RuntimeError):
    """The bundle cannot be written; the message says why and what to do."""


@dataclass(frozen=True)
class ServerSettings:
    """What the bundle's Go server is configured with: the job's `export:` settings (ray_app/spec.py: ExportSpec
    is their one reader and makes this), written into config.yaml, .env.example and the Docker files."""

    port: int = 8080  # the API's port: listened on, exposed by the image, published by docker-compose
    max_batch_size: int | None = None  # None: the served engine's batch, at least 8
    batch_wait_ms: float = 5.0
    max_queue: int = 64
    concurrent_batches: int = 2  # engine workers, by the preview's rule (engines/lanes.py)
    max_body_mb: float = 10.0
    cache_ttl_s: int = 3600  # 0: no answer cache

    def batch_for(self, engine_batch: int) -> int:
        return int(self.max_batch_size or max(engine_batch, 8))


@dataclass
class Bundle:
    out_dir: Path
    binary: Path
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _cache_root() -> Path:
    return Path(os.environ.get("YOLOFORGE_CACHE", Path.home() / ".cache" / "yoloforge"))


def gateway_digest() -> str:
    """A hash of the server's source (Go files, SQL, go.mod/go.sum), naming its cached build."""
    h = hashlib.sha256()
    for path in sorted(GATEWAY.rglob("*")):
        if path.is_file() and (path.suffix in (".go", ".sql") or path.name in ("go.mod", "go.sum")):
            h.update(str(path.relative_to(GATEWAY)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_server() -> Path:
    """Compile serving/gateway (cached by source hash). Needs Go; the first build fetches Go modules."""
    go = shutil.which("go")
    if go is None:
        raise BundleError("compiling the server needs Go (https://go.dev/dl/, 1.26 or newer) on PATH; "
                          "install it and run the export again")
    out = _cache_root() / "gateway" / gateway_digest() / SERVER
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    # go-nvml's generated cgo wrappers call NVML functions its header marks deprecated: quiet, not failing
    env = {"CGO_CFLAGS": "-O2 -g -Wno-deprecated-declarations", **os.environ, "CGO_ENABLED": "1"}
    proc = subprocess.run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), f"./cmd/{SERVER}"],
                          cwd=GATEWAY, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise BundleError(f"compiling the server failed (go build in {GATEWAY}):\n{proc.stderr.strip()[-3000:]}\n"
                          "A C compiler is needed (cgo), and the Go module proxy must be reachable the first time.")
    tmp.replace(out)
    return out


def openvino_runtime() -> list[Path]:
    """ONNX Runtime's OpenVINO build, its libraries taken once from the onnxruntime-openvino wheel on PyPI into
    the cache (installing the wheel would replace the onnxruntime Python package yoloforge uses)."""
    folder = _cache_root() / f"onnxruntime-openvino-{OPENVINO_ORT_VERSION}"
    files = [folder / name for name in OPENVINO_LIBRARIES]
    if all(f.is_file() for f in files):
        return files
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", f"onnxruntime-openvino=={OPENVINO_ORT_VERSION}",
                               "--no-deps", "--only-binary=:all:", "--dest", tmp, "--quiet"],
                              capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("onnxruntime_openvino-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise BundleError(f"the bundle of an OpenVINO selection needs ONNX Runtime's OpenVINO build "
                              f"(onnxruntime-openvino {OPENVINO_ORT_VERSION}, an 84 MB download from PyPI, once), and "
                              f"pip could not fetch it: {(proc.stderr or proc.stdout).strip()[-500:]}. Connect to "
                              "PyPI once, or leave openvino out of engines.backends and re-run `yoloforge bench`")
        _cache_root().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".openvino-", dir=_cache_root()))
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in OPENVINO_LIBRARIES:
                (staging / name).write_bytes(wheel.read(f"onnxruntime/capi/{name}"))
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return files


def ort_library() -> Path:
    """ONNX Runtime's C library, from the onnxruntime wheel yoloforge installs (the same version it benchmarked)."""
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    found = sorted(capi.glob("libonnxruntime.so.*"))
    if not found:
        raise BundleError(f"no libonnxruntime.so.* in {capi}: reinstall onnxruntime (pip install onnxruntime)")
    return found[-1]


def _measured(run: RunDir, config: EngineConfig, backend: str) -> str:
    """What the benchmark measured for the served configuration on the backend the server runs, if it ran."""
    name = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}.get(backend, backend)
    if not run.engines_table.is_file():
        return "not measured"
    rows = [r for r in read_parquet(run.engines_table) if r["status"] == "ok" and r["backend"] == backend
            and r["precision"] == config.precision and r["device"] == config.device and r["imgsz"] == config.imgsz]
    if not rows:
        return f"{name} was not benchmarked for this precision (run `yoloforge bench` with {backend})"
    parts = [f"batch {r['batch']}: {r['throughput']:.0f} img/s, p50 {r['p50_ms']:.1f} ms"
             for r in sorted(rows, key=lambda r: r["batch"])]
    selection = run.read_selection() or {}
    ranked = {m["key"]: m for m in (selection.get("bundle_ranking") or {}).get("measured", []) if "rps" in m}
    chosen = ranked.get((selection.get("chosen") or {}).get("key"))
    through = (f" (the engine alone); through this server, {chosen['rps']:.0f} RPS uncached at "
               f"{selection['bundle_ranking']['clients']} clients" if chosen else "")
    return f"{name} " + "; ".join(parts) + through


def server_cannot_run(row: dict[str, Any]) -> str | None:
    """Why the bundle's Go server cannot run a measured configuration (a row of engines.parquet) as it was
    measured, or None: it runs ONNX Runtime with its CPU, OpenVINO (CPU only), CUDA and TensorRT execution
    providers; PyTorch eager stays in Python. The selection is handed this rule (engines/selection.py)."""
    backend, gpu = row.get("backend"), str(row.get("device", "cpu")).startswith("cuda")
    if backend == "openvino" and gpu:
        return "the bundle runs OpenVINO on the CPU only"
    if backend not in ("onnxruntime", "openvino", "tensorrt"):
        return f"the bundle's Go server does not run {'PyTorch' if backend == 'pytorch' else backend}"
    return None


def plan_engine(chosen: EngineConfig, concurrent_batches: int = 2) -> tuple[EngineConfig, dict[str, Any], list[str]]:
    """The ONNX model file the server runs for a measured configuration, its engine settings (engine copies by the
    same rule as the preview's lanes: engines/lanes.py), and notes."""
    notes = []
    gpu = chosen.device.startswith("cuda")
    precision = chosen.precision
    provider = "openvino" if chosen.backend == "openvino" and not gpu else "cpu"
    if gpu:
        provider = "tensorrt" if chosen.backend == "tensorrt" else "cuda"
        if precision == "int8":
            notes.append("int8 on GPU needs TensorRT calibration tables the bundle does not carry: it serves fp16")
            precision = "fp16"
    elif precision not in ("fp32", "int8"):
        precision = "fp32"
    if server_cannot_run({"backend": chosen.backend, "device": chosen.device}):
        notes.append(f"the benchmark chose {chosen.backend} {chosen.precision}; the Go server runs ONNX Runtime, "
                     f"so it serves the same model as ONNX Runtime {precision} on {provider}")
    # GPU engines take the fp32 graph: TensorRT builds fp16 itself, and fp32 I/O keeps one code path
    file_precision = "int8" if precision == "int8" else "fp32"
    config = EngineConfig("onnxruntime", file_precision, chosen.batch, chosen.imgsz, chosen.threads, chosen.device, ())
    # the bundle's engine workers follow the preview's rule (engines/lanes.py): the layout the engines stage measured
    lanes, _ = engine_lanes(concurrent_batches, chosen if provider in ("cpu", "openvino")
                                       else EngineConfig("onnxruntime", device=chosen.device))
    # threads 0 with several workers: the server shares out the cores of the machine it runs on
    engine = {"provider": provider, "precision": precision, "threads": chosen.threads or 0, "workers": lanes,
              "device_id": int(chosen.device.split(":")[1]) if ":" in chosen.device else 0,
              "fp16": precision == "fp16", "cache_dir": "/tmp/yoloforge-trt-cache" if provider == "tensorrt" else ""}
    return config, engine, notes


def _render(name: str, values: dict[str, Any]) -> str:
    return string.Template((TEMPLATES / name).read_text()).substitute(values)


def export_bundle(run_dir: str | Path, out_dir: str | Path | None = None,
                  settings: ServerSettings = ServerSettings(), *, served: ServedModel | None = None) -> Bundle:
    """Write the bundle of run_dir's selected engine (or of served, another measured configuration) into out_dir
    (default RUN_DIR/bundle), replacing it whole, its server configured with settings (the job's export:)."""
    run = RunDir(Path(run_dir))
    served = served or ServedModel.from_run(run.path)  # NotServable names the command to run first
    out_dir = Path(out_dir) if out_dir else run.bundle
    max_batch = settings.batch_for(served.config.batch)
    wait_ms = float(settings.batch_wait_ms)
    queue = int(settings.max_queue)
    port = int(settings.port)
    base, engine, notes = plan_engine(served.config, settings.concurrent_batches)
    if served.note:
        notes.insert(0, served.note)
    binary = build_server()
    libraries = openvino_runtime() if engine["provider"] == "openvino" else [ort_library()]
    library = libraries[0]

    for stale in out_dir.parent.glob(".bundle-*"):  # an export killed before its rename left this
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        for sub in ("bin", "lib", "model", "monitoring/grafana/provisioning/datasources",
                    "monitoring/grafana/provisioning/dashboards", "monitoring/grafana/dashboards"):
            (tmp / sub).mkdir(parents=True)
        shutil.copy2(binary, tmp / "bin" / SERVER)
        for lib in libraries:
            shutil.copy2(lib, tmp / "lib" / lib.name)
        files: dict[int, str] = {}
        for batch in sorted({1, max_batch}):
            config = EngineConfig(base.backend, base.precision, batch, base.imgsz, base.threads, base.device, ())
            source = served.file_for(config)
            target = f"model/model-b{batch}-{base.precision}.onnx"
            shutil.copy2(source, tmp / target)
            files[batch] = target
        digest = hashlib.sha256((tmp / files[max(files)]).read_bytes()).hexdigest()[:12]
        (tmp / "model" / "labels.txt").write_text("\n".join(served.facts.names) + "\n")
        config_doc = {
            "listen": f":{port}",
            "ort_library": f"lib/{library.name}",
            "model": {"name": served.name, "version": digest, "task": served.facts.task, "imgsz": base.imgsz,
                      "names": list(served.facts.names), "files": files},
            "engine": engine,
            "batcher": {"max_batch_size": max_batch, "batch_wait": f"{wait_ms:g}ms", "max_queue": queue,
                        "workers": 1},
            "limits": {"max_body_mb": float(settings.max_body_mb), "request_timeout": "30s", "retry_after_s": 1},
            "auth": {"required": True, "refresh": "30s"},
            "redis": {"enabled": settings.cache_ttl_s > 0, "addr": "localhost:6379",
                      "ttl": f"{max(settings.cache_ttl_s, 1)}s", "timeout": "100ms"},
            "postgres": {"enabled": True,
                         "dsn": "postgres://yoloforge:yoloforge@localhost:5432/yoloforge?sslmode=disable",
                         "log_batch": 500, "log_interval": "1s", "log_buffer": 10000},
            "log_level": "info",
        }
        header = (f"# yoloforge bundle of {run.name}: the Go server's configuration. YOLOFORGE_* environment\n"
                  "# variables override it (see README.md). Paths are relative to this file.\n")
        (tmp / "config.yaml").write_text(header + yaml.safe_dump(config_doc, sort_keys=False))
        schema = subprocess.run([str(tmp / "bin" / SERVER), "schema"], capture_output=True, text=True, check=True)
        (tmp / "schema.sql").write_text(schema.stdout)
        shutil.copy2(Path(__file__).parent / "openapi.yaml", tmp / "openapi.yaml")
        gpu = engine["provider"] in ("cuda", "tensorrt")  # cpu and openvino run on the CPU image
        image = f"yoloforge/{_slug(served.name)}:{digest}"
        values = {
            "name": served.name, "compose_name": _slug(f"yoloforge-{served.name}"), "image": image,
            "dockerfile": "Dockerfile.cuda" if gpu else "Dockerfile", "ort_library": library.name,
            "ort_gpu_version": ORT_GPU_VERSION, "ort_gpu_wheel": ORT_GPU_WHEEL, "ort_gpu_sha256": ORT_GPU_SHA256,
            "gpu_provider": engine["provider"] if gpu else "cuda",
            "start_period": "120s" if engine["provider"] == "tensorrt" else "20s",
            "gpu_reservation": _GPU_RESERVATION if gpu else "",
            "max_batch_size": max_batch, "batch_wait": f"{wait_ms:g}ms", "max_queue": queue,
            "workers": engine["workers"], "port": port, "max_body_mb": f"{settings.max_body_mb:g}",
            "cache_ttl": f"{settings.cache_ttl_s}s", "cache_enabled": str(settings.cache_ttl_s > 0).lower(),
        }
        for template in ("Dockerfile", "Dockerfile.cuda", "docker-compose.yml", "docker-compose.cuda.yml"):
            (tmp / template).write_text(_render(template, values))
        (tmp / ".env.example").write_text(_render("env.example", values))
        (tmp / ".dockerignore").write_text("*\n!bin/\n!lib/\n!model/\n!config.yaml\n")
        monitoring = tmp / "monitoring"
        (monitoring / "prometheus.yml").write_text(_render("monitoring/prometheus.yml", values))
        grafana = monitoring / "grafana"
        shutil.copy2(TEMPLATES / "monitoring" / "grafana-datasource.yml",
                     grafana / "provisioning" / "datasources" / "prometheus.yml")
        shutil.copy2(TEMPLATES / "monitoring" / "grafana-dashboards.yml",
                     grafana / "provisioning" / "dashboards" / "yoloforge.yml")
        shutil.copy2(TEMPLATES / "monitoring" / "grafana-dashboard.json", grafana / "dashboards" / "yoloforge.json")
        summary = " ".join(notes) if notes else "The engine configuration the benchmark chose, as it was measured."
        readme_values = {**values, "summary": summary, "model_name": served.name,
                         "version": digest, "task": served.facts.task, "nclasses": len(served.facts.names),
                         "imgsz": base.imgsz, "precision": engine["precision"], "device": base.device,
                         "provider": engine["provider"],
                         "measured": _measured(run, base, "openvino" if engine["provider"] == "openvino"
                                               else "onnxruntime"),
                         "ort_version": library.name.split(".so.")[-1],
                         "runtime_note": (", its OpenVINO build: the engine runs on OpenVINO's CPU plugin"
                                          if engine["provider"] == "openvino" else ", CPU"),
                         "overrides": "\n".join(f"`{v}`" for v in _overrides(binary))}
        (tmp / "README.md").write_text(_render("README.md", readme_values))
        (tmp / "bundle.json").write_text(json.dumps({"run": str(run), "config": config_doc, "notes": notes,
                                                     "image": image, "source": gateway_digest()}, indent=2))
        old_env = out_dir / ".env"
        if old_env.is_file():  # the user's settings survive a re-export
            shutil.copy2(old_env, tmp / ".env")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.chmod(0o755)  # mkdtemp makes it private
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Bundle(out_dir=out_dir, binary=out_dir / "bin" / SERVER, config=config_doc, notes=notes)


_GPU_RESERVATION = """    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: 1
              capabilities: [gpu]"""


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text.lower()).strip("-.") or "model"


def _overrides(binary: Path) -> list[str]:
    """The server's environment overrides, as the server itself lists them (`yoloforge-server config -list`), so
    the bundle's README and the code cannot disagree."""
    listed = subprocess.run([str(binary), "config", "-list"], capture_output=True, text=True, check=True)
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


def build_image(bundle_dir: str | Path, tag: str | None = None) -> str:
    """docker build of the bundle through the Docker SDK; a clear BundleError where no Docker engine answers."""
    bundle_dir = Path(bundle_dir)
    info = json.loads((bundle_dir / "bundle.json").read_text())
    tag = tag or info["image"]
    try:
        import docker
    except ImportError as exc:
        raise BundleError("the docker Python package is missing: pip install docker") from exc
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise BundleError(f"no Docker engine answers here ({type(exc).__name__}): the bundle is complete in "
                          f"{bundle_dir}; build it where Docker runs with `docker compose build`") from exc
    dockerfile = "Dockerfile.cuda" if info["config"]["engine"]["provider"] in ("cuda", "tensorrt") else "Dockerfile"
    try:
        client.images.build(path=str(bundle_dir), dockerfile=dockerfile, tag=tag, rm=True)
    except Exception as exc:
        raise BundleError(f"docker build of {bundle_dir} failed: {exc}") from exc
    return tag


def bundle_complete(bundle_dir: Path) -> bool:
    """The bundle's files are there (whether it is current is the export stage's freshness rule)."""
    return (bundle_dir / "bundle.json").is_file() and (bundle_dir / "bin" / SERVER).is_file()


@contextmanager
def bundle_process(bundle_dir: Path, env: dict[str, str], log: Path, port: int,
                   ready_timeout_s: float = 60) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run the bundle's own binary as a user would (serve -config config.yaml) until /readyz says loaded; stop it
    with SIGTERM at the end (the caller can check the exit status: 0 is a clean, drained shutdown)."""
    import httpx

    full_env = {**os.environ, "YOLOFORGE_LISTEN": f"127.0.0.1:{port}", **env}
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(bundle_dir / "bin" / SERVER), "serve", "-config", str(bundle_dir / "config.yaml")],
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise BundleError(f"the server exited with status {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BundleError(f"the server was not ready in {ready_timeout_s:g} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def check_bundle(bundle_dir: Path, image: Path, port: int, *, load_s: float = 0.0,
                 clients: int = 16) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Start the bundle's binary natively (no Redis, no Postgres, a one-off key), send it one image; with load_s,
    also measure what it delivers under load (delivery); stop it. Returns the answer and the delivery."""
    import secrets

    import httpx

    key = secrets.token_urlsafe(24)
    env = {"YOLOFORGE_REDIS_ENABLED": "false", "YOLOFORGE_POSTGRES_ENABLED": "false", "YOLOFORGE_API_KEYS": key}
    log = bundle_dir.parent / f".{bundle_dir.name}-check.log"
    log.unlink(missing_ok=True)
    content_type = "image/png" if image.suffix.lower() == ".png" else "image/jpeg"
    delivered = None
    with bundle_process(bundle_dir, env, log, port) as (_, url):
        answer = httpx.post(f"{url}/v1/predict", content=image.read_bytes(), timeout=60,
                            headers={"Content-Type": content_type, "Authorization": f"Bearer {key}"})
        if answer.status_code == 200 and load_s > 0:
            imgsz = int(yaml.safe_load((bundle_dir / "config.yaml").read_text())["model"]["imgsz"])
            delivered = delivery(url, key, imgsz, load_s, clients)
    if answer.status_code != 200:
        raise BundleError(f"the bundle's server answered {answer.status_code}: {answer.text[:300]} (log: {log})")
    log.unlink(missing_ok=True)
    return answer.json(), delivered


def layout(config: EngineConfig, concurrent_batches: int = 2) -> tuple[Any, ...]:
    """What the Go server would run for a measured config: configs with one layout make the same bundle (a batch
    size is the batcher's to fill, not the server's)."""
    base, engine, _ = plan_engine(config, concurrent_batches)
    return (base.precision, base.imgsz, base.device, engine["provider"], engine["precision"], engine["threads"],
            engine["workers"])


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


def delivery(url: str, key: str, imgsz: int, seconds: float, clients: int) -> dict[str, Any]:
    """What a running server delivers: uncached RPS and latency at this many clients (images at the model's
    size, bench_server's method, short), and where one image's time goes (the server's own stage timings)."""
    import asyncio

    from yoloforge.serving.loadgen import run_load, synthetic_images

    images = synthetic_images(64, imgsz, seed=7)  # the cache is off: a repeated image still runs the model
    result = asyncio.run(run_load(url, images, concurrency=clients, duration=seconds, api_key=key))
    stages = stage_times(url, key, images[:8])
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "clients": clients,
            "seconds": seconds, "errors": int(sum(result.errors.values())),
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
