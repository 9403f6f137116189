"""Model files for the backends, made from the best weights and cached in one folder.

ONNX goes through Ultralytics' exporter (static batch and input size, so runtimes compile fixed shapes);
INT8 is ONNX Runtime's static QDQ quantisation calibrated on the dataset's own images, which OpenVINO also runs,
made by a recipe (engines/quantize.py).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from yoloforge.core import atomic
from yoloforge.engines.base import EngineConfig, EngineUnavailable

if TYPE_CHECKING:
    from yoloforge.engines.quantize import Recipe


def fresh(path: Path, source: Path) -> bool:
    """Whether a file made from source can be reused: it exists and is not older than source."""
    return path.is_file() and path.stat().st_mtime >= source.stat().st_mtime


def export_onnx(weights: str | Path, imgsz: int, batch: int, out_dir: str | Path, half: bool = False,
                device: str = "cpu") -> Path:
    """weights → <out_dir>/<stem>-<imgsz>-b<batch>-<fp32|fp16>.onnx (reused while newer than the weights)."""
    weights, out_dir = Path(weights), Path(out_dir)
    target = out_dir / f"{weights.stem}-{imgsz}-b{batch}-{'fp16' if half else 'fp32'}.onnx"
    if fresh(target, weights):
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
    with atomic.replacing(target) as tmp:  # a killed run leaves no half model that fresh() would trust
        shutil.move(produced, tmp)
    shutil.rmtree(work, ignore_errors=True)
    return target


def quantize_int8(fp32_model: str | Path, calibration: np.ndarray, batch: int, recipe: Recipe | None = None,
                  within_s: float | None = None) -> Path:
    """fp32 ONNX → <stem without fp32>-int8[-<recipe>].onnx, calibrated on pre-processed images (N, 3, H, W) by
    the recipe (engines/quantize.py; default TODAY) within within_s seconds (None: no limit); reused while newer
    than the fp32 model."""
    from yoloforge.engines.quantize import TODAY, quantize  # it asks this module what is fresh

    recipe = recipe or TODAY
    fp32_model = Path(fp32_model)
    suffix = "-int8.onnx" if recipe == TODAY else f"-int8-{recipe.tag()}.onnx"
    target = fp32_model.with_name(fp32_model.name.replace("-fp32.onnx", suffix))
    if fresh(target, fp32_model):
        return target
    return quantize(fp32_model, target, calibration, batch, recipe, within_s)


def model_file(config: EngineConfig, weights: str | Path, out_dir: str | Path,
               calibration: np.ndarray | None, recipe: Recipe | None = None) -> Path:
    """The file a backend loads for this config (PyTorch loads the weights themselves); int8 by `recipe`
    (engines/int8_choice.py chooses it; default TODAY)."""
    if Path(weights).suffix.lower() == ".onnx":
        return _given_onnx(config, Path(weights))
    if config.backend == "pytorch":
        return Path(weights)
    half = config.precision == "fp16" and config.backend in ("onnxruntime",) and config.device.startswith("cuda")
    onnx_path = export_onnx(weights, config.imgsz, config.batch, out_dir, half=half, device=config.device)
    if config.precision == "int8" and config.backend in ("onnxruntime", "openvino"):
        if calibration is None:
            raise EngineUnavailable("int8 needs calibration images from the dataset")
        return quantize_int8(onnx_path, calibration, config.batch, recipe)
    return onnx_path


def onnx_shape(path: str | Path) -> tuple[int | None, int | None]:
    """The batch and input size an ONNX model was exported at (None where that axis is dynamic)."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return fixed[0], fixed[-1]


def _given_onnx(config: EngineConfig, path: Path) -> Path:
    """A user's own .onnx runs as exported (its batch and size, unless they are dynamic, in fp32 or the precision
    it holds): there are no weights to export anything else from, and the user's file is never rewritten."""
    if config.backend == "pytorch":
        raise EngineUnavailable("PyTorch runs .pt checkpoints; this model is an .onnx file")
    batch, size = onnx_shape(path)
    if (batch is not None and batch != config.batch) or (size is not None and size != config.imgsz):
        raise EngineUnavailable(f"{path.name} was exported at batch {batch}, {size} px; give the .pt (or an ONNX "
                                "exported with dynamic=True) for other batch sizes or input sizes")
    if config.precision == "int8":
        raise EngineUnavailable("int8 is quantised from a .pt checkpoint's own export, not from a given .onnx")
    return path
