"""The engine of `yoloforge track --model`, which has no run directory: the model is resolved as a job's is (an
official name, a .pt) or read from an Ultralytics .onnx, and its engine is chosen by a short engines stage timed
on the video's own frames. That choice is speed only: a video has no labels, so no configuration's accuracy can be
checked, and int8 (whose accuracy must be checked) is not tried.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from yoloforge.core import atomic
from yoloforge.core.cache import cache_root
from yoloforge.core.errors import ModelError, YoloforgeError
from yoloforge.engines.base import EngineConfig, ModelFacts
from yoloforge.engines.export import onnx_shape
from yoloforge.engines.registry import config_space
from yoloforge.engines.runner import LocalPool, run_grid
from yoloforge.ray_app.console import console
from yoloforge.serving.served import ServedModel

TIMED_FRAMES = 8  # frames of the video each configuration is timed on
MIN_TIME_S = 1.0  # per configuration: short, since a user waits for it before the first frame is tracked
BATCH_SIZES = (1, 4)  # a batch gathers frames across streams (and from one recorded file)
SPEED_ONLY = ("speed only: the video has no labels, so accuracy is not compared between engines and int8 is not "
              "tried; for an engine chosen on accuracy too, run the pipeline on a labelled dataset")


@dataclass
class TrackModel:
    """A model given by name or file, with what pre/post-processing needs to know about it."""

    path: Path  # the .pt or .onnx file
    facts: ModelFacts

    @property
    def is_onnx(self) -> bool:
        return self.path.suffix.lower() == ".onnx"

    @functools.cached_property
    def digest(self) -> str:  # names the export cache and the served version: the file is hashed once
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]


def resolve_track_model(model: str) -> TrackModel:
    """An official name (downloaded once, with the zoo's offline error), a .pt checkpoint or an Ultralytics .onnx;
    a classifier is refused, since tracking follows boxes."""
    from yoloforge.ray_app.zoo import resolve_model

    if Path(model).suffix.lower() == ".onnx":
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist", fix="check the path")
        try:
            facts = ModelFacts.from_onnx(path)
        except Exception as err:  # onnx's parse errors are many; each is the user's file being unusable
            raise ModelError(f"{path} cannot be used: {str(err)[:300]}",
                             fix="export it with Ultralytics (yolo export model=best.pt format=onnx), or give "
                                 "the .pt") from None
    else:
        if Path(model).suffix.lower() in (".yaml", ".yml"):
            raise ModelError(f"{model} is a model config with no trained weights: it would detect nothing",
                             fix="give trained weights: an official name such as yolo11n, or a .pt / .onnx file")
        info = resolve_model(model, otherwise="give --model a local .pt or .onnx file")
        path = Path(info.path)
        facts = ModelFacts.from_checkpoint(path, imgsz=info.imgsz)
    if facts.task not in ("detect", "segment"):
        raise ModelError(f"{path.name} is a {facts.task} model; tracking follows the boxes of a detect or segment "
                         "model", fix="give a detection model, e.g. --model yolo11n.pt")
    return TrackModel(path, facts)


def candidate_configs(model: TrackModel, device: str) -> list[EngineConfig]:
    """The engines stage's space for this model at its own input size, without int8: every backend that can run
    it here (a .onnx has no PyTorch), fp16 too on a GPU; a .onnx only at the batch it was exported at."""
    backends = (["onnxruntime", "openvino"] if model.is_onnx else ["pytorch", "onnxruntime", "openvino"])
    cuda = device.startswith("cuda")
    if cuda:
        backends.append("tensorrt")
    batches = list(BATCH_SIZES)
    if model.is_onnx:
        exported, _ = onnx_shape(model.path)  # its size is the metadata's imgsz
        batches = [exported] if exported else batches
    precisions = ["fp32", "fp16"] if cuda else ["fp32"]
    return config_space(backends, precisions, batches, [model.facts.imgsz], [None], device)


def first_frames(url: str | None, count: int, imgsz: int) -> list[np.ndarray]:
    """The source's first frames to time on (blank frames where there is no source yet: `--serve`)."""
    if url is None:
        return [np.zeros((imgsz, imgsz, 3), np.uint8)] * count
    from yoloforge.serving.streams.decoding import open_frames, readable
    from yoloforge.serving.streams.sources import SourceError, SourceSpec

    spec = SourceSpec(url)
    try:
        spec.check()
        frames = [rgb for rgb, _, _ in itertools.islice(open_frames(url, camera=spec.is_camera), count)]
        if not frames:
            raise SourceError(f"video source {url} has no frames")
    except OSError as err:
        raise YoloforgeError(f"video source {url}: {readable(err)}", fix=SourceError("").fix) from None
    except SourceError as err:
        raise YoloforgeError(str(err), fix=err.fix) from None
    return frames


def choose_track_engine(model: TrackModel, frames: list[np.ndarray], device: str,
                        out_dir: Path) -> ServedModel:
    """Time every candidate on the frames, one at a time in this process, and serve the fastest that ran; the
    table is printed and written to out_dir/engines.json."""
    models_dir = cache_root() / "track-models" / f"{model.path.stem}-{model.digest}"
    models_dir.mkdir(parents=True, exist_ok=True)
    configs = candidate_configs(model, device)
    console.print(f"timing {len(configs)} engine configurations of {model.path.name} on {len(frames)} frames of "
                  f"the video ({SPEED_ONLY})")
    # in this process, not one Ray actor per backend as the pipeline's engines stage does: a user waits for this
    # before the first frame is tracked, and starting Ray would be most of that wait
    pool = LocalPool({"weights": str(model.path), "facts": model.facts.as_dict(), "clean_dir": None,
                      "models_dir": str(models_dir), "min_time_s": MIN_TIME_S, "min_runs": 5, "frames": frames})
    try:
        rows = run_grid(pool, configs, lambda row: None)
    finally:
        pool.close()
    ran = [r for r in rows if r.get("status") == "ok"]
    if not ran:
        reasons = "; ".join(f"{r['key']}: {r.get('reason')}" for r in rows)
        raise ModelError(f"no engine could run {model.path.name}: {reasons[:600]}",
                         fix="check the model loads with Ultralytics (yolo predict model=...)")
    best = max(ran, key=lambda r: float(r["throughput"]))
    console.print(speed_table(rows, best))
    console.print(f"tracking with {best['key']} ({SPEED_ONLY})")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out_dir / "engines.json", {"model": str(model.path), "chosen": best["key"],
                                                 "note": SPEED_ONLY, "rows": [_plain(r) for r in rows]})
    return ServedModel(facts=model.facts, config=EngineConfig.from_dict(best), model_file=Path(best["model_file"]),
                       weights=model.path, cache_dir=models_dir, clean_dir=None, version=model.digest,
                       name=model.path.stem, note=SPEED_ONLY)


def speed_table(rows: list[dict[str, Any]], chosen: dict[str, Any]) -> Table:
    table = Table(title="engines on the video's frames (speed only)")
    for column in ("configuration", "img/s", "p50 ms", ""):
        table.add_column(column)
    for r in sorted(rows, key=lambda r: -float(r.get("throughput") or 0)):
        ok = r.get("status") == "ok"
        table.add_row(r["key"], f"{r['throughput']:.1f}" if ok else "-", f"{r['p50_ms']:.1f}" if ok else "-",
                      "chosen" if r is chosen else ("" if ok else f"{r['status']}: {str(r.get('reason'))[:60]}"))
    return table


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "traceback" and isinstance(v, str | int | float | bool | None)}
