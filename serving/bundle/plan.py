"""What the bundle's server runs for a measured configuration, and with which settings: the rules the engines
stage ranks by and the export writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yoloforge.engines.base import EngineConfig
from yoloforge.engines.lanes import engine_lanes
from yoloforge.serving.bundle.platform import Platform

JETSON_TRT_CACHE = "/cache/tensorrt"  # the Jetson image's volume of TensorRT engines


@dataclass(frozen=True)
class ServerSettings:
    """What the bundle's Go server is configured with: the job's `export:` settings (ExportSpec, in
    ray_app/spec_sections.py, is their one reader and makes this), written into config.yaml, .env.example and the
    Docker files."""

    port: int = 8080  # the API's port: listened on, exposed by the image, published by docker-compose
    max_batch_size: int | None = None  # None: the served engine's batch, at least 8
    batch_wait_ms: float = 5.0
    max_queue: int = 64
    concurrent_batches: int = 2  # engine workers, by the preview's rule (engines/lanes.py)
    max_body_mb: float = 10.0
    cache_ttl_s: int = 3600  # 0: no answer cache
    streams: bool = True  # the stream service (video tracking at /v1/streams) beside the server

    def batch_for(self, engine_batch: int) -> int:
        return int(self.max_batch_size or max(engine_batch, 8))


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


def plan_engine(chosen: EngineConfig, concurrent_batches: int = 2,
                platform: Platform | None = None) -> tuple[EngineConfig, dict[str, Any], list[str]]:
    """The ONNX model file the server runs for a measured configuration, its engine settings (engine copies by the
    same rule as the preview's lanes: engines/lanes.py), and notes. For an arm64 platform, ONNX Runtime on its CPU:
    its aarch64 build on PyPI has no OpenVINO and no CUDA."""
    notes = []
    if platform is not None and platform.jetson:  # the Jetson's GPU, whatever this machine chose on
        if chosen.backend != "tensorrt" or not chosen.device.startswith("cuda"):
            notes.append(f"the Jetson bundle runs ONNX Runtime's TensorRT provider on the Jetson's GPU (fp16); "
                         f"the benchmark chose {chosen.backend} {chosen.precision} on {chosen.device} here")
        chosen = EngineConfig("tensorrt", "fp16" if chosen.precision == "fp32" else chosen.precision,
                              chosen.batch, chosen.imgsz, 0, "cuda:0", ())
    elif platform is not None and platform.goarch == "arm64" and (chosen.backend != "onnxruntime"
                                                                  or chosen.device != "cpu"):
        notes.append(f"the {platform.name} bundle runs ONNX Runtime on the CPU (its aarch64 build has no OpenVINO "
                     f"or CUDA); the benchmark chose {chosen.backend} {chosen.precision} on {chosen.device} here")
        chosen = EngineConfig("onnxruntime", chosen.precision if chosen.precision == "int8" else "fp32",
                              chosen.batch, chosen.imgsz, 0, "cpu", ())
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
    if platform is not None and platform.jetson:  # engines are built for the device at first start: kept in a volume
        engine["cache_dir"] = JETSON_TRT_CACHE
    return config, engine, notes


def layout(config: EngineConfig, concurrent_batches: int = 2) -> tuple[Any, ...]:
    """What the Go server would run for a measured config: configs with one layout make the same bundle (a batch
    size is the batcher's to fill, not the server's)."""
    base, engine, _ = plan_engine(config, concurrent_batches)
    return (base.precision, base.imgsz, base.device, engine["provider"], engine["precision"], engine["threads"],
            engine["workers"])
