"""Writing the bundle: the server's binary and libraries, the model files, config.yaml, the Docker and monitoring
files and a README, into a folder that replaces the old one whole."""

from __future__ import annotations

import hashlib
import json
import shutil
import string
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yoloforge.core.rundir import RunDir, read_parquet
from yoloforge.engines.base import EngineConfig
from yoloforge.serving.bundle.plan import JETSON_TRT_CACHE, ServerSettings, plan_engine
from yoloforge.serving.bundle.platform import Platform, host, platform_named
from yoloforge.serving.bundle.streams import SERVICE_PORT, streams_values, write_service
from yoloforge.serving.bundle.toolchain import (
    ORT_GPU_SHA256,
    ORT_GPU_VERSION,
    ORT_GPU_WHEEL,
    SERVER,
    build_server,
    gateway_digest,
    listed_overrides,
    openvino_runtime,
    ort_library,
)
from yoloforge.serving.served import ServedModel

SERVING = Path(__file__).resolve().parent.parent
SAMPLES = 8  # validation images the bundle ships for its server's benchmark
TEMPLATES = SERVING / "templates"


@dataclass
class Bundle:
    out_dir: Path
    binary: Path
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _render(name: str, values: dict[str, Any]) -> str:
    return string.Template((TEMPLATES / name).read_text()).substitute(values)


def export_bundle(run_dir: str | Path, out_dir: str | Path | None = None,
                  settings: ServerSettings | None = None, *, served: ServedModel | None = None,
                  platform: Platform | None = None) -> Bundle:
    """Write the bundle of run_dir's selected engine (or of served, another measured configuration) into out_dir
    (default RUN_DIR/bundle), replacing it whole, its server configured with settings (the job's export:) and built
    for platform (default this machine's)."""
    run = RunDir(Path(run_dir))
    platform = platform or host()
    settings = settings or ServerSettings()
    served = served or ServedModel.from_run(run.path)  # NotServable names the command to run first
    out_dir = Path(out_dir) if out_dir else run.bundle
    max_batch = settings.batch_for(served.config.batch)
    wait_ms = float(settings.batch_wait_ms)
    queue = int(settings.max_queue)
    port = int(settings.port)
    base, engine, notes = plan_engine(served.config, settings.concurrent_batches, platform)
    if served.note:
        notes.insert(0, served.note)
    binary = build_server(platform)
    libraries = openvino_runtime() if engine["provider"] == "openvino" else [ort_library(platform)]
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
        (tmp / "samples").mkdir()  # what `yoloforge-server bench` times the machine it runs on with
        for i, image in enumerate(run.sample_images(SAMPLES)):
            shutil.copy2(image, tmp / "samples" / f"{i:02d}{image.suffix.lower()}")
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
        gpu = engine["provider"] in ("cuda", "tensorrt")  # cpu and openvino run on the CPU image
        cuda = platform.goarch == "amd64"  # the CUDA image's ONNX Runtime wheel is x86-64's
        streams = settings.streams and not gpu
        if settings.streams and gpu:
            notes.append("the stream service (/v1/streams) ships with CPU bundles only for now: this GPU bundle "
                         "has no stream routes")
        if streams:
            config_doc["streams"] = {"url": f"http://127.0.0.1:{SERVICE_PORT}"}  # compose points it at its service
            write_service(tmp)
        header = (f"# yoloforge bundle of {run.name}: the Go server's configuration. YOLOFORGE_* environment\n"
                  "# variables override it (see README.md). Paths are relative to this file.\n")
        (tmp / "config.yaml").write_text(header + yaml.safe_dump(config_doc, sort_keys=False))
        schema = subprocess.run([*platform.command(str(tmp / "bin" / SERVER)), "schema"], capture_output=True,
                                text=True, check=True, timeout=300)
        (tmp / "schema.sql").write_text(schema.stdout)
        _write_spec(tmp / "openapi.yaml", streams)
        image = f"yoloforge/{_slug(served.name)}:{digest}"
        values = {
            "name": served.name, "compose_name": _slug(f"yoloforge-{served.name}"), "image": image,
            "dockerfile": "Dockerfile.cuda" if gpu and cuda else "Dockerfile", "ort_library": library.name,
            "ort_gpu_version": ORT_GPU_VERSION, "ort_gpu_wheel": ORT_GPU_WHEEL, "ort_gpu_sha256": ORT_GPU_SHA256,
            "gpu_provider": engine["provider"] if gpu else "cuda",
            "start_period": "900s" if platform.jetson else "120s" if engine["provider"] == "tensorrt" else "20s",
            "gpu_reservation": (_JETSON_RUNTIME.format(cache=JETSON_TRT_CACHE) if platform.jetson
                                else _GPU_RESERVATION if gpu else ""),
            "gpu_volume": "  tensorrt-cache:\n" if platform.jetson else "", "trt_cache": JETSON_TRT_CACHE,
            "max_batch_size": max_batch, "batch_wait": f"{wait_ms:g}ms", "max_queue": queue,
            "workers": engine["workers"], "port": port, "max_body_mb": f"{settings.max_body_mb:g}",
            "cache_ttl": f"{settings.cache_ttl_s}s", "cache_enabled": str(settings.cache_ttl_s > 0).lower(),
            "streams_port": SERVICE_PORT, **streams_values(streams, image, port, platform.docker_platform),
            "platform": platform.docker_platform, "platform_readme": _platform_readme(platform),
            "platform_title": _PLATFORM_TITLES[platform.docker_platform],
            "docker_files": _DOCKER_FILES if cuda else "`Dockerfile` (CPU), `docker-compose.yml` (api + redis + "
                                                       "postgres)",
            "gpu_compose_hint": "         # GPU: docker compose -f docker-compose.yml -f docker-compose.cuda.yml "
                                "up -d --build" if cuda else "",
        }
        templates = {"Dockerfile": "Dockerfile.jetson" if platform.jetson else "Dockerfile",
                     "docker-compose.yml": "docker-compose.yml"}
        templates.update({name: name for name in ["Dockerfile.cuda", "docker-compose.cuda.yml"] if cuda})
        templates.update({name: name for name in ["Dockerfile.streams"] if streams})
        for target, template in templates.items():
            (tmp / target).write_text(_render(template, values))
        (tmp / ".env.example").write_text(_render("env.example", values))
        (tmp / ".dockerignore").write_text("*\n!bin/\n!lib/\n!model/\n!samples/\n!config.yaml\n!streams/\n")
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
                         "overrides": "\n".join(f"`{v}`" for v in listed_overrides(binary, platform))}
        (tmp / "README.md").write_text(_render("README.md", readme_values))
        (tmp / "bundle.json").write_text(json.dumps({"run": str(run), "config": config_doc, "notes": notes,
                                                     "image": image, "source": gateway_digest(),
                                                     "platform": platform.name, "dockerfile": values["dockerfile"]},
                                                    indent=2))
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


def _write_spec(target: Path, streams: bool) -> None:
    """The bundle's openapi.yaml lists exactly the routes its server answers: without the stream service, none of
    the `streams` tag."""
    if streams:
        shutil.copy2(SERVING / "openapi.yaml", target)
        return
    spec = yaml.safe_load((SERVING / "openapi.yaml").read_text())
    spec["paths"] = {path: item for path, item in spec["paths"].items()
                     if not any("streams" in (op.get("tags") or []) for op in item.values() if isinstance(op, dict))}
    target.write_text(yaml.safe_dump(spec, sort_keys=False, width=120))


_DOCKER_FILES = ("`Dockerfile` (CPU), `Dockerfile.cuda` (CUDA / TensorRT), `docker-compose.yml` (api + redis + "
                 "postgres), `docker-compose.cuda.yml` (GPU overlay)")
_PLATFORM_TITLES = {"linux/amd64": "Linux x86-64", "linux/arm64": "Linux arm64"}


def _platform_readme(platform: Platform) -> str:
    """What a bundle built for another architecture than the build machine's says of it: what was checked here
    (its binary answered the same under emulation), what was not (its speed), and the command that measures it."""
    if platform.jetson:
        return _JETSON_README
    if platform.native:
        return ""
    return _CROSS_README.format(platform=platform.name, machine=platform.machine)


_CROSS_README = """## On the {platform} machine (a Raspberry Pi 5, a Graviton server, an Orin's CPU)

This bundle was built for {platform} on another machine: the Go server cross-compiled, ONNX Runtime's {machine}
library taken from its wheel. What was checked there: its own binary, run under qemu-user emulation, started and
answered a validation image. What was not: its speed, which emulation says nothing of. So on the device, run
`./bin/yoloforge-server bench` first (above): it is how you learn what this machine really does.

"""


_JETSON_README = """## On the Jetson (JetPack 6) — not verified on a device

This bundle was built for an NVIDIA Jetson (Orin Nano, Orin NX, AGX Orin on JetPack 6) on another machine. What was
checked there: the arm64 server and the model, run under qemu-user emulation on ONNX Runtime's CPU provider
(`lib/` holds that CPU library). What was not: anything on the Jetson itself — its image, ONNX Runtime's GPU build
for JetPack (fetched from the Jetson AI Lab's index when you build the image, see `Dockerfile`), TensorRT, or its
speed. On the Jetson: `docker compose up -d --build` (the NVIDIA container runtime is JetPack's). At the first
start TensorRT builds its engines for this device, which takes minutes; they are kept in the `tensorrt-cache`
volume, so later starts are quick. Then run the server's benchmark, as above, inside the container:
`docker compose exec api /app/yoloforge-server bench`.

"""

_JETSON_RUNTIME = """    runtime: nvidia
    volumes:
      - tensorrt-cache:{cache}"""

_GPU_RESERVATION = """    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              count: 1
              capabilities: [gpu]"""


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text.lower()).strip("-.") or "model"


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


def bundle_complete(bundle_dir: Path) -> bool:
    """The bundle's files are there (whether it is current is the export stage's freshness rule)."""
    return (bundle_dir / "bundle.json").is_file() and (bundle_dir / "bin" / SERVER).is_file()


def bundle_platform(bundle_dir: Path) -> Platform:
    """The platform a bundle was built for (bundle.json's; this machine's for a bundle written before bundle.json
    named it, or a folder laid out by hand without one)."""
    info = bundle_dir / "bundle.json"
    return platform_named(json.loads(info.read_text()).get("platform") if info.is_file() else None)
