"""INT8 recipes for ONNX Runtime's static QDQ quantisation (the model ONNX Runtime and OpenVINO both run), chosen by
measurement on the user's own data.

One fixed recipe loses what it loses: which calibration method fits a model's activations, and which of its layers
cannot take int8, depend on the model and its data. `search_recipe` tries calibration methods, then keeps the layers
whose int8 costs most accuracy in float (measured one module at a time, as NNCF's accuracy control does), within a
time budget. It scores on one half of the validation images; the chosen recipe's drop is reported on the other half,
which no choice saw. The head's decoding (box distribution, sigmoid, the concatenation of pixel boxes with 0-1
scores) always stays in float: one int8 scale over both would wipe out the scores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.core import atomic
from yoloforge.engines.export import fresh

METHODS = ("minmax", "percentile", "entropy")
# Entropy last, and only with a budget this large: ONNX Runtime's histogram grows at a fixed bin width when a later
# batch widens a tensor's range, and the KL search is quadratic in the bins, so its cost is unbounded (measured: 118 s
# for one calibration of the demo's model at 128 px, against 2-5 s for MinMax and Percentile); it is stopped at the
# end of the budget, but a smaller budget would be spent on it alone
ENTROPY_MIN_BUDGET_S = 120.0
STRIDE_IMAGES = 8  # images a calibrator holds the intermediate tensors of at once
# the share of what is left of a search's budget after the calibration steps that its sensitivity step may use: at
# 640 px a module's sensitivity costs about 10 s, and a step that measured every module left no time to put the
# sensitive ones in float
SENSITIVITY_SHARE = 0.6


_LONGEST_WAIT_S = 86400.0 * 7  # a child's timeout past this is no limit (poll() takes int32 milliseconds: 24 days)


class OutOfTime(Exception):
    """A recipe's calibration did not finish in the seconds it was given; nothing of it was kept."""


@dataclass(frozen=True)
class Recipe:
    """How one int8 model is made: the calibration method, how many training images calibrate it, and which of
    the network's modules (Ultralytics' model.N) stay whole in float beside the head's decoding."""

    method: str = "minmax"
    images: int = 32
    float_modules: tuple[str, ...] = ()
    activations: str = "u8"  # u8: asymmetric uint8 activations; s8: symmetric int8 (no zero point)

    def tag(self) -> str:
        """A short stable name for this recipe's model file."""
        digest = hashlib.sha256(",".join(self.float_modules).encode()).hexdigest()[:8]
        return f"{self.method}{self.images}-f{len(self.float_modules)}-{digest}" + (
            "" if self.activations == "u8" else f"-{self.activations}")

    def describe(self) -> str:
        layers = f"{len(self.float_modules)} layer{'s' if len(self.float_modules) != 1 else ''} in float"
        return f"{layers}, {self.method}, {self.images} images" + (
            ", symmetric activations" if self.activations == "s8" else "")

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "images": self.images, "float_modules": list(self.float_modules),
                "activations": self.activations}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        return cls(str(data["method"]), int(data["images"]), tuple(data.get("float_modules", ())),
                   str(data.get("activations", "u8")))


TODAY = Recipe()  # what the engines stage ran before recipes were searched: MinMax, 32 images, the head's decoding


def _graph(model_path: Path) -> Any:
    import onnx

    return onnx.load(str(model_path), load_external_data=False).graph


def module_names(model_path: Path, graph: Any = None) -> list[str]:
    """The network's modules in graph order (model.0, model.1, ...), read from the exported node names."""
    graph = graph or _graph(model_path)
    found = {n.name.split("/")[1] for n in graph.node if n.name.startswith("/model.")}
    return sorted((m for m in found if m.startswith("model.")), key=lambda m: int(m.split(".")[1]))


def float_nodes(model_path: Path, recipe: Recipe) -> list[str]:
    """Nodes left in float: the head's decoding (non-Conv nodes of the last module), and every node of the recipe's
    float modules."""
    graph = _graph(model_path)
    modules = module_names(model_path, graph)
    if not modules:
        return []
    head, kept = modules[-1], set(recipe.float_modules)
    return [n.name for n in graph.node if n.name.startswith("/model.") and (
        n.name.split("/")[1] in kept or (n.name.startswith(f"/{head}/") and n.op_type != "Conv"))]


def _calibration_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


def prepared(fp32_model: Path) -> Path:
    """ONNX Runtime's pre-processing (shape inference, fusions) of an fp32 model, made once beside it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = fp32_model.with_name(fp32_model.stem + "-prep.onnx")
    if not fresh(target, fp32_model):
        with atomic.replacing(target) as tmp:
            quant_pre_process(str(fp32_model), str(tmp))
    return target


def quantize(fp32_model: Path, target: Path, calibration: np.ndarray, batch: int, recipe: Recipe,
             within_s: float | None = None) -> Path:
    """fp32 ONNX -> target, quantised by this recipe on the first recipe.images of calibration (N, 3, H, W).

    The ranges of a (method, images) pair are computed once per model file and cached beside it, so recipes that
    differ only in their float layers cost a quantisation pass, not a calibration pass. A calibration (whose cost
    has no bound: Entropy's) runs in a child process stopped after `within_s` seconds (OutOfTime); None: no limit."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    images = calibration[: recipe.images]
    if len(images) < batch:
        from yoloforge.engines.base import EngineUnavailable

        raise EngineUnavailable(f"int8 calibration needs at least {batch} images, the dataset gave {len(images)}")

    class Batches(CalibrationDataReader):
        """The calibration batches, read a stride at a time: the calibrators keep every intermediate tensor of what
        one read gives them (at 640 px, tens of MB an image)."""

        def __init__(self) -> None:
            self.all = [images[i: i + batch] for i in range(0, len(images) - batch + 1, batch)]
            self.batches = iter(self.all)

        def __len__(self) -> int:
            return len(self.all)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.batches = iter(self.all[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            data = next(self.batches, None)
            return None if data is None else {"images": data}

    source = prepared(fp32_model)
    fingerprint = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:12]
    ranges = fp32_model.with_name(f"{fp32_model.stem}-ranges-{recipe.method}-{len(images)}-{fingerprint}.json")
    if ranges.exists() and not fresh(ranges, source):
        ranges.unlink()  # calibrated on the model exported before this one, under the same name
    if within_s is not None and not ranges.exists():
        return _quantize_within(fp32_model, target, images, batch, recipe, within_s)
    reader = Batches()
    stride = max(d for d in range(1, min(max(1, STRIDE_IMAGES // batch), len(reader)) + 1) if len(reader) % d == 0)
    extra: dict[str, Any] = {"CalibStridedMinMax": stride}  # ONNX Runtime's name; every calibrator honours it
    if recipe.method == "percentile":
        extra["CalibPercentile"] = 99.999
    if recipe.activations == "s8":
        extra["ActivationSymmetric"] = True
    # atomic, the model and the ranges: a killed run leaves no half file to be trusted; quiet: ONNX Runtime's
    # calibrators print progress
    calibrated = ranges.exists()
    new_ranges = ranges if calibrated else ranges.with_name(f".{ranges.name}.{os.getpid()}")
    try:
        with atomic.replacing(target) as tmp, contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(source), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8 if recipe.activations == "s8" else QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            nodes_to_exclude=float_nodes(source, recipe),
                            calibrate_method=_calibration_method(recipe.method),
                            calibration_cache_path=str(new_ranges), extra_options=extra)
        if not calibrated:
            os.replace(new_ranges, ranges)
    finally:
        if not calibrated:
            new_ranges.unlink(missing_ok=True)  # stopped part-way (moved into place otherwise)
    return target


def _quantize_within(fp32_model: Path, target: Path, images: np.ndarray, batch: int, recipe: Recipe,
                     within_s: float) -> Path:
    """quantize() in a child process, killed after within_s seconds: a calibration runs inside ONNX Runtime, which
    cannot be interrupted from Python. The images go to the child as a file beside the model (removed after)."""
    with tempfile.TemporaryDirectory(dir=fp32_model.parent, prefix=".calibration-") as work:
        np.save(Path(work) / "images.npy", images)
        job = {"fp32_model": str(fp32_model), "target": str(target), "images": str(Path(work) / "images.npy"),
               "batch": batch, "recipe": recipe.as_dict()}
        (Path(work) / "job.json").write_text(json.dumps(job))
        try:
            done = subprocess.run([sys.executable, "-m", "yoloforge.engines.quantize", str(Path(work) / "job.json")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  timeout=min(max(within_s, 0.0), _LONGEST_WAIT_S))
        except subprocess.TimeoutExpired as stopped:  # subprocess.run has killed the child and waited for it
            raise OutOfTime(f"{recipe.describe()}: its calibration was stopped after {within_s:.0f} s") from stopped
    if done.returncode != 0:
        raise RuntimeError(f"int8 calibration ({recipe.describe()}) failed: {done.stderr.strip()[-2000:]}")
    return target


@dataclass
class Tried:
    """One recipe the search measured: its score on the selection half and what measuring it cost."""

    recipe: Recipe
    score: float  # nan where it was stopped
    seconds: float
    step: str
    stopped: bool = False  # its calibration ran out of the budget's time (OutOfTime)


@dataclass
class SearchResult:
    chosen: Recipe
    chosen_score: float
    tried: list[Tried] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)  # module -> score gained by keeping it in float
    out_of_time: bool = False  # a step was cut short by the budget (or the sensitivity step by its share of it)


# score(recipe, within_s) -> the recipe's accuracy; within_s: the seconds its calibration may take (None: no limit),
# past which it raises OutOfTime
Scorer = Callable[[Recipe, "float | None"], float]


def search_recipe(score: Scorer, modules: list[str], reference: float, *, goal: float,
                  budget_s: float, images: tuple[int, ...] = (32, 128), max_float: int = 6,
                  faster_activations: str | None = None,
                  clock: Callable[[], float] = time.monotonic) -> SearchResult:
    """The recipe whose drop against `reference` (fp32 on the same images) is smallest, preferring fewer float layers.

    score(recipe, within_s) -> accuracy on the selection half. Each recipe may take what is left of the budget (a
    calibration that would overrun it is stopped: OutOfTime), but for the first, which is always measured whole.
    Steps, each skipped once the budget is spent:
    1. each calibration method at the smallest image count (Entropy only with ENTROPY_MIN_BUDGET_S); the best is
       kept (ties: the earlier method);
    2. the larger image counts with that method, kept where they score better;
    3. sensitivity: each module but the head alone in float (in graph order, the stem first, until
       SENSITIVITY_SHARE of what steps 1-2 left of the budget is spent), its gain over step 2's recipe;
    4. greedily, the most sensitive modules (positive gain) into float, one more at a time, up to max_float, until
       the drop is within `goal`; a larger set is kept only where it scores goal/2 better than the best so far (a
       float layer costs speed).
    5. faster_activations (the activation format the backend runs faster, e.g. OpenVINO's symmetric int8): the
       chosen recipe in that format, kept where it scores within `goal` of the recipe it would replace; measured
       even when the budget is spent (one recipe past it at most)."""
    started = clock()
    tried: list[Tried] = []
    result = SearchResult(TODAY, float("-inf"))

    def spent() -> bool:
        return clock() - started >= budget_s

    def measure(recipe: Recipe, step: str, whole: bool = False) -> float:
        """The recipe's score; -inf where its calibration was stopped at the end of the budget."""
        begun = clock()
        try:
            value = score(recipe, None if whole else max(0.0, budget_s - (begun - started)))
        except OutOfTime:
            result.out_of_time = True
            tried.append(Tried(recipe, float("nan"), clock() - begun, step, stopped=True))
            return float("-inf")
        tried.append(Tried(recipe, value, clock() - begun, step))
        return value

    def better(value: float) -> bool:
        # ties go to the recipe found first, which is the simpler one: fewer images, fewer float layers
        return value > result.chosen_score + 1e-9

    for method in METHODS:
        if method == "entropy" and budget_s < ENTROPY_MIN_BUDGET_S:
            continue
        if tried and spent():
            result.out_of_time = True
            break
        recipe = Recipe(method, min(images))
        value = measure(recipe, "method", whole=not tried)
        if better(value):
            result.chosen, result.chosen_score = recipe, value
    for count in sorted(images)[1:]:
        if spent():
            result.out_of_time = True
            break
        recipe = Recipe(result.chosen.method, count)
        value = measure(recipe, "images")
        if better(value):
            result.chosen, result.chosen_score = recipe, value
    base, base_score = result.chosen, result.chosen_score
    if reference - base_score > goal:
        # the sensitivity step may use its share of what steps 1-2 left; the rest is the greedy step's
        begun = clock()
        until = begun + SENSITIVITY_SHARE * max(0.0, budget_s - (begun - started))
        for module in modules[:-1]:  # the head's decoding is in float already; its convolutions take int8 well
            if clock() >= until:
                result.out_of_time = True
                break
            value = measure(Recipe(base.method, base.images, (module,)), "sensitivity")
            result.sensitivity[module] = value - base_score
        ranked = [m for m, gain in sorted(result.sensitivity.items(), key=lambda kv: -kv[1]) if gain > 0]
        kept: list[str] = []
        for module in ranked[:max_float]:
            if reference - result.chosen_score <= goal:
                break
            if spent():
                result.out_of_time = True
                break
            kept.append(module)
            recipe = Recipe(base.method, base.images, tuple(sorted(kept, key=modules.index)))
            value = measure(recipe, "greedy")
            if value > result.chosen_score + goal / 2:  # a layer in float costs speed: it must buy half the goal
                result.chosen, result.chosen_score = recipe, value
    if faster_activations and faster_activations != result.chosen.activations:
        # measured even past the budget (one recipe): speed the backend would otherwise leave unused
        recipe = dataclasses.replace(result.chosen, activations=faster_activations)
        value = measure(recipe, "activations", whole=True)
        if value >= result.chosen_score - goal:
            result.chosen, result.chosen_score = recipe, value
    result.tried = tried
    return result



if __name__ == "__main__":  # the child process of _quantize_within
    _job = json.loads(Path(sys.argv[1]).read_text())
    quantize(Path(_job["fp32_model"]), Path(_job["target"]), np.load(_job["images"], mmap_mode="r"), _job["batch"],
             Recipe.from_dict(_job["recipe"]))
