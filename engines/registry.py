"""Backend name → Engine class, what each can run, and the config space a job asks for."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.engines.base import Engine, EngineConfig

# option variants worth timing on a CUDA device (each its own config)
CUDA_OPTIONS: dict[str, list[tuple[tuple[str, Any], ...]]] = {
    "pytorch": [(), (("channels_last", True),), (("channels_last", True), ("compile", True)),
                (("cuda_graphs", True),)],
    "onnxruntime": [(("provider", "cuda"),), (("provider", "tensorrt"),)],
}


def unavailable_reason(config: EngineConfig) -> str | None:
    """Why this config cannot run at all, known without loading anything (None: worth trying)."""
    cuda = config.device.startswith("cuda")
    b, p = config.backend, config.precision
    if b == "tensorrt" and not cuda:
        return "TensorRT runs on NVIDIA GPUs only"
    if b == "openvino" and cuda:
        return "OpenVINO does not run on NVIDIA GPUs"
    if p == "fp16" and not cuda:
        return "fp16 is a GPU precision; CPUs here run fp32 or int8"
    if b == "pytorch" and p == "int8":
        return "PyTorch int8 is not offered (ONNX Runtime, OpenVINO and TensorRT run int8)"
    if b == "onnxruntime" and p == "int8" and config.option("provider") == "cuda":
        return "ONNX Runtime's CUDA provider does not accelerate int8 (use its TensorRT provider)"
    return None


# backends whose copies share a CPU well: each copy keeps its own thread pool
LANE_BACKENDS = ("onnxruntime", "openvino")


def config_space(backends: list[str], precisions: list[str], batch_sizes: list[int], imgsizes: list[int],
                 threads: list[int | None], device: str) -> list[EngineConfig]:
    """Every combination the job asks for, GPU option variants included; impossible ones are kept (and reported
    as unavailable) so the table shows why a backend was not used."""
    cuda = device.startswith("cuda")
    cores = cpu_count()
    configs = []
    for backend, precision, batch, imgsz in itertools.product(backends, precisions, batch_sizes, imgsizes):
        variants = CUDA_OPTIONS.get(backend, [()]) if cuda else [()]
        for options, n_threads in itertools.product(variants, threads if not cuda else [None]):
            configs.append(EngineConfig(backend, precision, batch, imgsz, n_threads, device, tuple(sorted(options))))
        if not cuda and backend in LANE_BACKENDS and list(threads) == [None] and cores > 1:
            # the layout is a dimension too: one copy on every core, or one single-thread copy per core
            # (what the bundle's server runs as engine.workers and the preview as lanes)
            configs[-1] = EngineConfig(backend, precision, batch, imgsz, None, device, (), lanes=1)
            configs.append(EngineConfig(backend, precision, batch, imgsz, 1, device, (), lanes=cores))
    return list(dict.fromkeys(configs))


def load_engine(config: EngineConfig, model_path: Path, weights: Path, cache_dir: Path,
                calibration: np.ndarray | None) -> Engine:
    if config.backend == "pytorch":
        from yoloforge.engines.torch_backend import TorchEngine

        return TorchEngine(config, str(weights))
    if config.backend == "onnxruntime":
        from yoloforge.engines.ort_backend import OnnxRuntimeEngine

        return OnnxRuntimeEngine(config, model_path, cache_dir)
    if config.backend == "openvino":
        from yoloforge.engines.openvino_backend import OpenVinoEngine

        return OpenVinoEngine(config, model_path)
    if config.backend == "tensorrt":
        from yoloforge.engines.tensorrt_backend import TensorRtEngine

        return TensorRtEngine(config, model_path, cache_dir, calibration)
    raise ValueError(f"unknown backend {config.backend}")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
