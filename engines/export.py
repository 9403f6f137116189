"""Model files for the backends, made from the best weights and cached in one folder.

ONNX goes through Ultralytics' exporter (static batch and input size, so runtimes compile fixed shapes);
INT8 is ONNX Runtime's static QDQ quantisation calibrated on the dataset's own images, which OpenVINO also runs.
The head's decoding (box distribution, sigmoid, concatenation of pixel boxes with 0-1 scores) stays in float:
one int8 scale over both would wipe out the scores.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
from yoloforge.core import atomic
from yoloforge.engines.base import EngineConfig, EngineUnavailable


def _fresh(path: Path, source: Path) -> bool:
    return path.is_file() and path.stat().st_mtime >= source.stat().st_mtime


def export_onnx(weights: str | Path, imgsz: int, batch: int, out_dir: str | Path, half: bool = False,
                device: str = "cpu") -> Path:
    """weights → <out_dir>/<stem>-<imgsz>-b<batch>-<fp32|fp16>.onnx (reused while newer than the weights)."""
    weights, out_dir = Path(weights), Path(out_dir)
    target = out_dir / f"{weights.stem}-{imgsz}-b{batch}-{'fp16' if half else 'fp32'}.onnx"
    if _fresh(target, weights):
        return target
    from ultralytics import YOLO

    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / f".export-{imgsz}-b{batch}"  # the exporter writes beside its weights: give it a private copy
    work.mkdir(exist_ok=True)
    copy = work / weights.name
    shutil.copy2(weights, copy)
    with contextlib.redirect_stdout(io.StringIO()):
        produced = YOLO(str(copy)).export(format="onnx", imgsz=imgsz, batch=batch, dynamic=False, simplify=False,
                                          half=half, device=device if half else "cpu", verbose=False)
    with atomic.replacing(target) as tmp:  # a killed run leaves no half model that _fresh would trust
        shutil.move(produced, tmp)
    shutil.rmtree(work, ignore_errors=True)
    return target


def _head_nodes(model_path: Path) -> list[str]:
    """Non-Conv nodes of the last module (the head's decoding), which stay in float."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    modules = [n.name.split("/")[1] for n in graph.node if n.name.startswith("/model.")]
    if not modules:
        return []
    last = max({m for m in modules if m.startswith("model.")}, key=lambda m: int(m.split(".")[1]))
    return [n.name for n in graph.node if n.name.startswith(f"/{last}/") and n.op_type != "Conv"]


def quantize_int8(fp32_model: str | Path, calibration: np.ndarray, batch: int) -> Path:
    """fp32 ONNX → <stem without fp32>-int8.onnx, calibrated on pre-processed images (N, 3, H, W)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_model = Path(fp32_model)
    target = fp32_model.with_name(fp32_model.name.replace("-fp32.onnx", "-int8.onnx"))
    if _fresh(target, fp32_model):
        return target
    if len(calibration) < batch:
        raise EngineUnavailable(f"int8 calibration needs at least {batch} images, the dataset gave {len(calibration)}")

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([calibration[i: i + batch] for i in range(0, len(calibration) - batch + 1, batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            data = next(self.batches, None)
            return None if data is None else {"images": data}

    prepared = fp32_model.with_name(fp32_model.stem + "-prep.onnx")
    quant_pre_process(str(fp32_model), str(prepared))
    with atomic.replacing(target) as tmp:  # a killed run leaves no half model that _fresh would trust
        quantize_static(str(prepared), str(tmp), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=_head_nodes(prepared), calibrate_method=CalibrationMethod.MinMax)
    prepared.unlink(missing_ok=True)
    return target


def model_file(config: EngineConfig, weights: str | Path, out_dir: str | Path,
               calibration: np.ndarray | None) -> Path:
    """The file a backend loads for this config (PyTorch loads the weights themselves)."""
    if config.backend == "pytorch":
        return Path(weights)
    half = config.precision == "fp16" and config.backend in ("onnxruntime",) and config.device.startswith("cuda")
    onnx_path = export_onnx(weights, config.imgsz, config.batch, out_dir, half=half, device=config.device)
    if config.precision == "int8" and config.backend in ("onnxruntime", "openvino"):
        if calibration is None:
            raise EngineUnavailable("int8 needs calibration images from the dataset")
        return quantize_int8(onnx_path, calibration, config.batch)
    return onnx_path
