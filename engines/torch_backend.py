"""PyTorch: the trained network as Ultralytics builds it. Eager on CPU; on CUDA also fp16, channels_last,
torch.compile and CUDA graphs (options "channels_last", "compile", "cuda_graphs")."""

from __future__ import annotations

import numpy as np
from yoloforge.engines.base import EngineConfig, EngineUnavailable


class TorchEngine:
    def __init__(self, config: EngineConfig, weights: str) -> None:
        import torch
        from ultralytics import YOLO

        self.config = config
        self.torch = torch
        cuda = config.device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise EngineUnavailable(f"{config.device} asked for but torch sees no CUDA device")
        if config.precision == "int8":
            raise EngineUnavailable("PyTorch int8 is not offered (use ONNX Runtime, OpenVINO or TensorRT int8)")
        if config.precision == "fp16" and not cuda:
            raise EngineUnavailable("fp16 on CPU is slower than fp32 in PyTorch; fp16 runs on CUDA only")
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device(config.device)
        model = YOLO(weights).model.fuse().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        head = model.model[-1]
        head.export, head.format = True, "onnx"  # the same outputs as the ONNX export: no training extras
        self.dtype = torch.float16 if config.precision == "fp16" else torch.float32
        model = model.to(self.device, self.dtype)
        self.memory_format = torch.channels_last if config.option("channels_last") else torch.contiguous_format
        model = model.to(memory_format=self.memory_format)
        if config.option("compile"):
            # the default mode: max-autotune spent over seven minutes tuning one batch size of yolo11n on an H100
            model = torch.compile(model)
        self.model = model
        self._graph = None
        if config.option("cuda_graphs"):
            if not cuda:
                raise EngineUnavailable("CUDA graphs need a CUDA device")
            self._capture_graph()

    def _forward(self, x):  # type: ignore[no-untyped-def]
        out = self.model(x)
        return list(out) if isinstance(out, list | tuple) else [out]

    def _capture_graph(self) -> None:
        torch = self.torch
        c = self.config
        self._static_in = torch.zeros((c.batch, 3, c.imgsz, c.imgsz), device=self.device, dtype=self.dtype)
        self._static_in = self._static_in.contiguous(memory_format=self.memory_format)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):  # warm up on a side stream, as CUDA graph capture requires
                self._forward(self._static_in)
        torch.cuda.current_stream().wait_stream(stream)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph), torch.inference_mode():
            self._static_out = self._forward(self._static_in)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, self.dtype, non_blocking=True)
            x = x.contiguous(memory_format=self.memory_format)
            if self._graph is not None:
                self._static_in.copy_(x)
                self._graph.replay()
                outs = self._static_out
            else:
                outs = self._forward(x)
            return [o.float().cpu().numpy() for o in outs]

    def close(self) -> None:
        self.model = None
        self._graph = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
