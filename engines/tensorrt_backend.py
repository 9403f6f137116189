"""TensorRT native: an engine built from the ONNX export (FP32, FP16, INT8 with an entropy calibrator fed from
the dataset's images), cached on disk by the hash of the model and build settings. Buffers are torch CUDA
tensors, so no pycuda is needed. Written for the TensorRT 10 API; unavailable (skipped) without tensorrt or CUDA."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from yoloforge.core import atomic
from yoloforge.engines.base import EngineConfig, EngineUnavailable


def _engine_path(onnx_path: Path, config: EngineConfig, cache_dir: Path) -> Path:
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    return cache_dir / f"{onnx_path.stem}-{config.precision}-b{config.batch}-{config.imgsz}-{digest}.engine"


class TensorRtEngine:
    def __init__(self, config: EngineConfig, onnx_path: str | Path, cache_dir: str | Path,
                 calibration: np.ndarray | None = None) -> None:
        try:
            import tensorrt as trt
            import torch
        except ImportError as err:
            raise EngineUnavailable(f"TensorRT is not installed ({err}); pip install 'yoloforge[gpu]'") from None
        if not config.device.startswith("cuda") or not torch.cuda.is_available():
            raise EngineUnavailable("TensorRT needs a CUDA device")
        self.config, self.trt, self.torch = config, trt, torch
        self.device = torch.device(config.device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        path = _engine_path(Path(onnx_path), config, Path(cache_dir))
        if not path.is_file():
            atomic.write_bytes(path, self._build(Path(onnx_path), calibration))
        runtime = trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EngineUnavailable(f"TensorRT could not load its cached engine {path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        shape = (config.batch, 3, config.imgsz, config.imgsz)
        self.context.set_input_shape(self.inputs[0], shape)
        self.buffers = {}
        for name in self.names:
            dims = tuple(self.context.get_tensor_shape(name))
            dtype = torch.float16 if self.engine.get_tensor_dtype(name) == trt.DataType.HALF else torch.float32
            self.buffers[name] = torch.empty(dims, dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
        self.stream = torch.cuda.Stream(device=self.device)

    def _build(self, onnx_path: Path, calibration: np.ndarray | None) -> bytes:
        trt, c = self.trt, self.config
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineUnavailable(f"TensorRT cannot parse {onnx_path.name}: {errors}")
        build = builder.create_builder_config()
        build.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 4 << 30)
        profile = builder.create_optimization_profile()
        shape = (c.batch, 3, c.imgsz, c.imgsz)
        profile.set_shape(network.get_input(0).name, shape, shape, shape)
        build.add_optimization_profile(profile)
        if c.precision in ("fp16", "int8"):
            build.set_flag(trt.BuilderFlag.FP16)
        if c.precision == "int8":
            if calibration is None:  # only a new build calibrates; a cached engine needs no images
                raise EngineUnavailable("TensorRT int8 needs calibration images to build its engine")
            build.set_flag(trt.BuilderFlag.INT8)
            build.int8_calibrator = _EntropyCalibrator(trt, self.torch, calibration, c.batch,
                                                       onnx_path.with_suffix(".calib"))
            build.set_calibration_profile(profile)
        serialized = builder.build_serialized_network(network, build)
        if serialized is None:
            raise EngineUnavailable(f"TensorRT failed to build an engine for {c.key} (see its log above)")
        return bytes(serialized)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        torch = self.torch
        source = self.buffers[self.inputs[0]]
        with torch.cuda.stream(self.stream):
            source.copy_(torch.from_numpy(batch).to(self.device, non_blocking=True).to(source.dtype))
            self.context.execute_async_v3(self.stream.cuda_stream)
            outs = [self.buffers[n].float().cpu() for n in self.outputs]
        self.stream.synchronize()
        return [o.numpy() for o in outs]

    def close(self) -> None:
        self.context = None
        self.engine = None
        self.buffers = {}


def _EntropyCalibrator(trt, torch, images: np.ndarray, batch: int, cache: Path):  # type: ignore[no-untyped-def]
    """An IInt8EntropyCalibrator2 over pre-processed dataset images (N, 3, H, W), one engine batch at a time."""

    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.device_input = torch.empty((batch, *images.shape[1:]), dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names):  # type: ignore[no-untyped-def]
            if self.index + batch > len(images):
                return None
            self.device_input.copy_(torch.from_numpy(images[self.index: self.index + batch]))
            self.index += batch
            return [self.device_input.data_ptr()]

        def read_calibration_cache(self):  # type: ignore[no-untyped-def]
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data) -> None:  # type: ignore[no-untyped-def]
            atomic.write_bytes(cache, bytes(data))

    return Calibrator()
