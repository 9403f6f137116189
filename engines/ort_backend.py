"""ONNX Runtime: CPU, CUDA and TensorRT execution providers, with thread settings (option "provider")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from yoloforge.engines.base import EngineConfig, EngineUnavailable

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def provider_for(config: EngineConfig) -> str:
    return config.option("provider") or ("cuda" if config.device.startswith("cuda") else "cpu")


class OnnxRuntimeEngine:
    def __init__(self, config: EngineConfig, model_path: str | Path, cache_dir: str | Path | None = None) -> None:
        import onnxruntime as ort

        self.config = config
        provider = provider_for(config)
        name = PROVIDERS[provider]
        if name not in ort.get_available_providers():
            raise EngineUnavailable(f"ONNX Runtime here has no {name} (available: "
                                    f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu for CUDA")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if config.threads:
            options.intra_op_num_threads = config.threads
            options.inter_op_num_threads = 1
        if not config.option("spin", True):
            # idle threads sleep instead of spinning: slower alone, but a server's other processes get the cores
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        device_id = int(config.device.split(":")[1]) if ":" in config.device else 0
        provider_options: dict[str, object] = {}
        if provider == "cuda":
            provider_options = {"device_id": device_id}
        elif provider == "tensorrt":
            provider_options = {"device_id": device_id, "trt_fp16_enable": config.precision == "fp16",
                                "trt_int8_enable": config.precision == "int8",
                                "trt_engine_cache_enable": True,
                                "trt_engine_cache_path": str(cache_dir or Path(model_path).parent)}
        providers = [(name, provider_options)] + ([] if provider == "cpu" else ["CPUExecutionProvider"])
        self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.input_type = np.float16 if "float16" in self.session.get_inputs()[0].type else np.float32

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        outs = self.session.run(None, {self.input_name: batch.astype(self.input_type, copy=False)})
        return [np.asarray(o, dtype=np.float32) for o in outs]

    def close(self) -> None:
        self.session = None
