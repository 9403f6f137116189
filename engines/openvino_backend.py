"""OpenVINO on CPU (or an Intel GPU): reads the ONNX export directly; int8 runs the same QDQ model that ONNX
Runtime's calibration wrote, so one calibration serves both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from yoloforge.engines.base import EngineConfig, EngineUnavailable


class OpenVinoEngine:
    def __init__(self, config: EngineConfig, model_path: str | Path) -> None:
        import openvino as ov

        self.config = config
        if config.device.startswith("cuda"):
            raise EngineUnavailable("OpenVINO does not run on NVIDIA GPUs")
        if config.precision == "fp16":
            raise EngineUnavailable("OpenVINO fp16 is for Intel GPUs; on CPU it runs fp32 or bf16 only")
        core = ov.Core()
        model = core.read_model(str(model_path))
        model.reshape([config.batch, 3, config.imgsz, config.imgsz])  # static shapes compile to faster kernels
        properties: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY" if config.batch == 1 else "THROUGHPUT",
                                         "INFERENCE_PRECISION_HINT": "f32"}
        if config.threads:
            properties["INFERENCE_NUM_THREADS"] = config.threads
        self.compiled = core.compile_model(model, config.option("ov_device", "CPU"), properties)
        self.request = self.compiled.create_infer_request()

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        results = self.request.infer({0: batch})
        return [np.asarray(results[out], dtype=np.float32).copy() for out in self.compiled.outputs]

    def close(self) -> None:
        self.request = None
        self.compiled = None
