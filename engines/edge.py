"""Speed on an edge device nobody here has (`targets.edge_device`), estimated from published figures: the one owner
of those figures and of how they are scaled to another model and input size.

An anchor is the published latency of YOLO11n at 640 px (6.5 GFLOPs) on the device with one engine. A network's
latency there is estimated as the anchor times its GFLOPs at its input size over 6.5: convolution-bound work
scales with the operations, which grow with the square of the input side. It is an estimate, labelled as one
wherever it is shown, until `yoloforge-server bench` measures the device itself."""

from __future__ import annotations

from dataclasses import dataclass

ANCHOR_GFLOPS = 6.5  # YOLO11n at 640 px, the model the anchors were published for


@dataclass(frozen=True)
class EdgeDevice:
    name: str  # as targets.edge_device names it
    title: str
    bundle_platform: str  # `yoloforge export --platform` for it
    engine: tuple[str, str]  # (backend, precision) its bundle runs
    anchors_ms: dict[tuple[str, str], float]  # (backend, precision) -> published ms for YOLO11n at 640 px

    @property
    def label(self) -> str:
        return f"estimated for {self.name}"


EDGE_DEVICES = {d.name: d for d in (
    # Ultralytics' Raspberry Pi 5 benchmarks: the bundle runs ONNX Runtime on its CPU, so its figure is ONNX's,
    # not NCNN's or OpenVINO's
    EdgeDevice("rpi5", "Raspberry Pi 5", "linux/arm64", ("onnxruntime", "fp32"),
               {("onnxruntime", "fp32"): 168.0, ("openvino", "fp32"): 81.0, ("ncnn", "fp32"): 88.0,
                ("pytorch", "fp32"): 405.0}),
    # Jetson Orin Nano Super (JetPack 6): the bundle runs TensorRT fp16
    EdgeDevice("orin-nano", "Jetson Orin Nano Super", "jetson", ("tensorrt", "fp16"),
               {("tensorrt", "fp16"): 4.9, ("tensorrt", "int8"): 3.9}),
)}


def estimate_ms(device: EdgeDevice, gflops: float, engine: tuple[str, str] | None = None) -> float:
    """The estimated latency of one image on the device, for a network of gflops at its input size, on engine
    (default: the one the device's bundle runs)."""
    return device.anchors_ms[engine or device.engine] * gflops / ANCHOR_GFLOPS


def gflops_at(gflops: float, imgsz: int, new_imgsz: int) -> float:
    """A network's GFLOPs at another input size (the work grows with the image's area)."""
    return gflops * (new_imgsz / imgsz) ** 2


def largest_imgsz_for(device: EdgeDevice, gflops: float, imgsz: int, fps: float, stride: int = 32,
                      smallest: int = 160) -> int | None:
    """The largest input size (a multiple of stride, at least smallest, at most imgsz) whose estimate on the
    device reaches fps; None when even the smallest does not."""
    for size in range(imgsz - imgsz % stride, smallest - 1, -stride):
        if 1000 / estimate_ms(device, gflops_at(gflops, imgsz, size)) >= fps:
            return size
    return None
