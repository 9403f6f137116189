"""The one interface every inference backend implements, and what they share: configs, model facts, results.

An Engine only runs the network: a float32 NCHW batch in, the model's raw output arrays out (the same arrays
Ultralytics' ONNX export produces). Letterboxing, NMS, masks and top-k live in engines/processing.py and are
written once for all backends, as ONNX Runtime keeps its execution providers behind one session API.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Task = Literal["detect", "segment", "classify"]
BACKENDS = ("pytorch", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")


class EngineUnavailable(RuntimeError):
    """The backend cannot run this config here (missing library, no GPU, unsupported precision): skipped, not a bug."""


@dataclass(frozen=True)
class EngineConfig:
    """One point of the inference space: which backend, how, at what batch and input size."""

    backend: str
    precision: str = "fp32"
    batch: int = 1
    imgsz: int = 640
    threads: int | None = None  # CPU threads (None: the backend's default, all cores)
    device: str = "cpu"  # cpu | cuda | cuda:N
    # backend extras, e.g. (("compile", True),) or (("provider", "tensorrt"),)
    options: tuple[tuple[str, Any], ...] = ()
    # engine copies run side by side, each with `threads` threads (a server's workers); None: not measured
    lanes: int | None = None

    @property
    def key(self) -> str:
        extras = "".join(f"-{k}={v}" for k, v in self.options)
        threads = f"-t{self.threads}" if self.threads else ""
        lanes = f"-x{self.lanes}" if self.lanes and self.lanes > 1 else ""
        return f"{self.backend}-{self.precision}-b{self.batch}-{self.imgsz}px{threads}{lanes}-{self.device}{extras}"

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = json.dumps(dict(self.options), sort_keys=True)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineConfig:
        options = d.get("options") or {}
        if isinstance(options, str):
            options = json.loads(options)
        lanes = d.get("lanes")
        return cls(backend=d["backend"], precision=d.get("precision", "fp32"), batch=int(d.get("batch", 1)),
                   imgsz=int(d.get("imgsz", 640)), threads=d.get("threads"), device=d.get("device", "cpu"),
                   options=tuple(sorted(dict(options).items())),
                   lanes=int(lanes) if isinstance(lanes, int | float) and lanes == lanes else None)


@dataclass
class ModelFacts:
    """What pre/post-processing needs to know about the network, read from the checkpoint once."""

    task: Task
    names: list[str]
    imgsz: int  # the size it was trained at
    stride: int = 32
    end2end: bool = False  # NMS-free head (YOLOv10, YOLO26): output rows are already x1 y1 x2 y2 conf cls
    weights: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, weights: str | Path, imgsz: int | None = None) -> ModelFacts:
        from ultralytics import YOLO

        model = YOLO(str(weights))
        net = model.model
        head = net.model[-1] if hasattr(net, "model") else None
        names = model.names
        trained = imgsz or int((getattr(net, "args", {}) or {}).get("imgsz", 640) or 640)
        return cls(task=model.task, names=[names[i] for i in sorted(names)], imgsz=trained,
                   stride=int(max(getattr(net, "stride", np.array([32])).tolist() or [32])),
                   end2end=bool(getattr(head, "end2end", False)), weights=str(weights))

    @classmethod
    def from_onnx(cls, path: str | Path) -> ModelFacts:
        """The facts Ultralytics' ONNX export writes into the model's metadata (task, names, imgsz, stride)."""
        import ast

        meta = onnx_metadata(path)
        if "names" not in meta or "task" not in meta:
            raise ValueError("it has no Ultralytics metadata (task, names): it was not exported by Ultralytics")
        if "'nms': True" in meta.get("args", ""):
            raise ValueError("it was exported with nms=True, whose outputs are already filtered boxes")
        names = ast.literal_eval(meta["names"])
        imgsz = ast.literal_eval(meta.get("imgsz", "640"))
        return cls(task=meta["task"], names=[str(names[i]) for i in sorted(names)],  # type: ignore[arg-type]
                   imgsz=int(max(imgsz) if isinstance(imgsz, list | tuple) else imgsz),
                   stride=int(meta.get("stride", 32)), end2end=meta.get("end2end") == "True", weights=str(path))


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX file's metadata (what Ultralytics' export writes: task, names, imgsz, stride, end2end), read by ONNX
    Runtime, which every runtime of yoloforge has (the bundle's stream service has no onnx package)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # read, not run
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


@runtime_checkable
class Engine(Protocol):
    """A loaded network on one backend. infer() takes exactly config.batch images at config.imgsz."""

    config: EngineConfig

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """float32 (B, 3, imgsz, imgsz) in [0, 1] → the model's raw outputs as float32 numpy arrays."""
        ...

    def close(self) -> None: ...


@dataclass
class Prediction:
    """One image's answer, in original image pixels, the same for every backend."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # x1 y1 x2 y2
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    masks: np.ndarray | None = None  # segment: (n, H, W) bool at the original size
    top: np.ndarray | None = None  # classify: class ids, most likely first
    probs: np.ndarray | None = None  # classify: their probabilities
    width: int = 0
    height: int = 0
