"""The int8 recipe one backend runs at one input size: searched once on the user's own data, then cached.

The search (engines/quantize.py: search_recipe) scores recipes on one half of the validation images; the chosen
recipe's drop against fp32 on the same engine is then measured on the other half, which no choice saw, and that
held-out drop is what the selection holds the int8 configuration to (engines/selection.py), beside its drop on the
whole split. The engines stage (engines/worker.py), the servers (serving/served.py, through the recipe recorded in
the configuration's row) and scripts/bench_int8.py all go through here.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.core import atomic
from yoloforge.engines.accuracy import Sample, accuracy_metric, evaluate, load_split, spread
from yoloforge.engines.base import EngineConfig, ModelFacts
from yoloforge.engines.export import export_onnx, fresh, quantize_int8
from yoloforge.engines.predictor import Predictor
from yoloforge.engines.processing import preprocess
from yoloforge.engines.quantize import TODAY, Recipe, module_names, search_recipe

# the search stops keeping layers in float once a recipe agrees with fp32 this closely (1 - agreement, in the
# metric's units)
GOOD_ENOUGH = 0.0025
AGREEMENT_CONF = 0.25  # fp32's answers at Ultralytics' predict threshold are the labels recipes are scored on
UNLABELLED_IMAGES = 48  # training images outside the calibration pool, added to the images recipes are scored on
CALIBRATION_POOL = 128  # training images drawn for calibration when recipes are searched; a recipe uses a prefix
RECIPE_BACKENDS = ("onnxruntime", "openvino")  # the backends that run the QDQ model a recipe makes
# the activation format a backend runs faster than uint8 with a zero point: OpenVINO's CPU kernels take symmetric int8
# activations without zero-point compensation (measured at batch 1: 204 against 150 img/s on the tomato model at
# 320 px, 574 against 442 on the synthetic one at 128 px), where ONNX Runtime's x86 kernels are uint8 x int8 and run
# symmetric int8 3.7x slower; the search keeps it where accuracy holds
FASTER_ACTIVATIONS = {"openvino": "s8"}


def calibration_images(clean_dir: str | Path, task: str, imgsz: int, count: int) -> np.ndarray:
    """`count` pre-processed training images (never validation ones: accuracy is measured on those) that int8
    models are calibrated on, spread over the split and ordered so that every prefix a recipe uses is itself
    spread over it (the first 32 of 128 are every 4th). A measured int8 row records its count
    (`calibration_images`), so a server that re-makes the model at another batch size calibrates on the same
    images."""
    samples = load_split(clean_dir, task, "train", count)
    order = np.concatenate([np.arange(start, len(samples), 4) for start in range(min(4, len(samples)))])
    return preprocess([samples[i].image for i in order], imgsz, task)[0]


def unlabelled_images(clean_dir: str | Path, task: str, count: int = UNLABELLED_IMAGES) -> list[np.ndarray]:
    """Up to `count` training images that no calibration pool holds (spread over the rest of the split): recipes
    are scored on how closely they agree with fp32, which needs no labels, so these add to the few validation
    images a dataset may have."""
    samples = load_split(clean_dir, task, "train")
    pooled = set(spread(len(samples), CALIBRATION_POOL).tolist())
    rest = [s for i, s in enumerate(samples) if i not in pooled]
    return [rest[i].image for i in spread(len(rest), count)]


def agreement_labels(predictor: Predictor, images: list[np.ndarray]) -> list[Sample]:
    """fp32's own answers as labels: a recipe's score on them is how closely its int8 model agrees with fp32.
    Its difference from fp32 is then the quantisation's alone, not the few labelled images' noise (on 8 validation
    images, which 32 calibration images are picked moved today's drop from -0.011 to +0.000)."""
    answers = predictor.predict(images, conf=AGREEMENT_CONF)
    if predictor.facts.task == "classify":
        return [Sample(image, np.zeros((0, 4), np.float32), np.asarray([int(a.top[0]) if a.top is not None and
                                                                        len(a.top) else -1]))
                for image, a in zip(images, answers, strict=True)]
    return [Sample(image, a.boxes.astype(np.float32), a.classes.astype(np.int64))
            for image, a in zip(images, answers, strict=True)]


def split_halves(val: list[Sample], test: list[Sample] | None = None) -> tuple[list[Sample], list[Sample]]:
    """(the images recipes are chosen on, the images the choice is checked on): the validation and test splits
    where there is a test split, else alternate halves of the validation images, so both span the split."""
    return (val, test) if test else (val[0::2], val[1::2])


@dataclass(frozen=True)
class RecipeChoice:
    """The recipe searched for one backend at one input size, what it scored and what searching cost."""

    recipe: Recipe
    backend: str
    imgsz: int
    metric: str
    budget_s: float
    search_s: float
    tried: int
    out_of_time: bool
    selection_images: int
    heldout_images: int
    fp32_selection: float
    int8_selection: float
    fp32_heldout: float
    int8_heldout: float
    sensitive: tuple[tuple[str, float], ...] = ()  # the modules whose float gained most, most first
    heldout_split: str = "held-out validation"  # or "test"
    agreement: float = 0.0  # the chosen recipe's score against fp32's answers (what recipes were compared by)
    agreement_reference: float = 0.0  # fp32's own score against them
    agreement_images: int = 0

    @property
    def heldout_drop(self) -> float:
        return self.fp32_heldout - self.int8_heldout

    def describe(self) -> str:
        """e.g. "int8: 3 layers in float, entropy, 128 images: -0.0030 mAP50-95 on 16 held-out validation images"."""
        return (f"int8: {self.recipe.describe()}: {-self.heldout_drop:+.4f} {self.metric} on {self.heldout_images} "
                f"{self.heldout_split} images{' (search cut short by its budget)' if self.out_of_time else ''}")

    def row_fields(self) -> dict[str, Any]:
        """The columns a measured int8 configuration carries in engines.parquet and selection.json."""
        return {"int8_recipe": json.dumps(self.recipe.as_dict()), "int8_recipe_text": self.describe(),
                "int8_heldout_drop": self.heldout_drop, "int8_search_s": self.search_s, "int8_tried": self.tried}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recipe": self.recipe.as_dict(), "sensitive": [list(s) for s in self.sensitive]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecipeChoice:
        return cls(**{**data, "recipe": Recipe.from_dict(data["recipe"]),
                      "sensitive": tuple((str(m), float(g)) for m, g in data.get("sensitive", ()))})


def row_recipe(row: dict[str, Any]) -> Recipe | None:
    """The recipe a measured configuration's model file was made by (None: not int8, or made before recipes)."""
    text = row.get("int8_recipe")
    return Recipe.from_dict(json.loads(text)) if isinstance(text, str) and text else None


def _digest(*arrays: np.ndarray) -> str:
    sha = hashlib.sha256()
    for array in arrays:
        sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()[:16]


def choose_recipe(backend: str, weights: Path, facts: ModelFacts, cache_dir: Path, pool: np.ndarray,
                  val: list[Sample], budget_s: float, device: str = "cpu",
                  test: list[Sample] | None = None, unlabelled: list[np.ndarray] = ()) -> RecipeChoice:
    """The recipe for `backend` at facts.imgsz, calibrated on pool, searched within budget_s and checked on the
    test split (or on the held-out half of the validation images: split_halves); cached beside the fp32 model for
    the same inputs (model, budget, calibration and scoring images).

    Recipes are compared by their agreement with fp32 (agreement_labels) on the selection images and the
    unlabelled ones; the chosen recipe's accuracy is then measured against the real labels on both image sets."""
    metric = accuracy_metric(facts.task)
    fp32 = export_onnx(weights, facts.imgsz, 1, cache_dir)
    selection, heldout = split_halves(val, test)
    if not heldout:  # a single validation image: nothing can be held out, and the report says so
        heldout = selection
    key = {"budget_s": budget_s, "goal": GOOD_ENOUGH, "backend": backend, "scoring": "agreement",
           "activations": FASTER_ACTIVATIONS.get(backend),
           "images": _digest(pool, *(s.image for s in selection), *(s.image for s in heldout), *unlabelled)}
    cache = fp32.with_name(f"{fp32.stem}-{backend}-recipe.json")
    if fresh(cache, fp32):
        kept = json.loads(cache.read_text())
        if kept.get("key") == key:
            return RecipeChoice.from_dict(kept["choice"])
    f32 = EngineConfig(backend, "fp32", 1, facts.imgsz, None, device)
    i8 = EngineConfig(backend, "int8", 1, facts.imgsz, None, device)

    def loaded(config: EngineConfig, path: Path) -> Any:
        from yoloforge.engines.registry import load_engine

        return load_engine(config, path, weights, cache_dir, None)

    def scores(config: EngineConfig, path: Path, *sample_sets: list[Sample]) -> list[float]:
        """The metric on each set, with the model loaded once."""
        engine = loaded(config, path)
        try:
            predictor = Predictor(engine, facts)
            return [float(evaluate(predictor, samples)[metric]) for samples in sample_sets]
        finally:
            engine.close()

    def made(recipe: Recipe, within_s: float | None = None) -> Path:
        return quantize_int8(fp32, pool, 1, recipe, within_s)

    started = time.perf_counter()
    engine = loaded(f32, fp32)
    try:
        reference_predictor = Predictor(engine, facts)
        agreed = agreement_labels(reference_predictor, [s.image for s in selection] + list(unlabelled))
        # fp32 against its own answers: near 1, not 1 (its low-score boxes)
        reference, fp32_selection, fp32_heldout = (float(evaluate(reference_predictor, samples)[metric])
                                                   for samples in (agreed, selection, heldout))
    finally:
        engine.close()
    counts = tuple(sorted({min(n, len(pool)) for n in (TODAY.images, CALIBRATION_POOL)}))
    found = search_recipe(lambda r, within_s: scores(i8, made(r, within_s), agreed)[0], module_names(fp32), reference,
                          goal=GOOD_ENOUGH, budget_s=budget_s, images=counts,
                          faster_activations=FASTER_ACTIVATIONS.get(backend))
    search_s = time.perf_counter() - started
    int8_selection, int8_heldout = scores(i8, made(found.chosen), selection, heldout)
    choice = RecipeChoice(
        recipe=found.chosen, backend=backend, imgsz=facts.imgsz, metric=metric, budget_s=budget_s,
        search_s=search_s, tried=len(found.tried), out_of_time=found.out_of_time,
        selection_images=len(selection), heldout_images=len(heldout), fp32_selection=fp32_selection,
        int8_selection=int8_selection, fp32_heldout=fp32_heldout,
        int8_heldout=int8_heldout, agreement=found.chosen_score, agreement_reference=reference,
        agreement_images=len(agreed),
        sensitive=tuple(sorted(found.sensitivity.items(), key=lambda kv: -kv[1])[:3]),
        heldout_split="test" if test else "held-out validation" if heldout is not selection else
        "validation (none held out: too few)")
    atomic.write_json(cache, {"key": key, "choice": choice.as_dict()})
    return choice
