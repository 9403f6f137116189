"""What Ultralytics' trainer does with the hyperparameters yoloforge searches (ultralytics 8.4.190): the space and
its bounds, the defaults a user would otherwise get, and the rules of its trainer that decide which genes can act
at a trial's budget. ga/ stays pure; this module is where yoloforge knows Ultralytics.

A gene the trainer ignores at the trial's budget cannot change its result: searching it only re-trains configs
already measured under another name. Those genes are fixed to Ultralytics' default before the search starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from yoloforge.ga.space import Gene, SearchSpace


def yolo_space(include_imgsz: bool = False, include_batch: bool = False) -> SearchSpace:
    """Ultralytics training hyperparameters with bounds from its own tuner, plus the optimizer.

    The optimizer is a gene because on small data it decides more than everything else (docs/measured-defaults.md).
    """
    genes = [
        Gene("optimizer", "cat", choices=("SGD", "AdamW", "Adam")),
        Gene("lr0", "log", 1e-5, 1e-1),
        Gene("lrf", "float", 0.01, 1.0),
        Gene("momentum", "float", 0.6, 0.98),
        Gene("weight_decay", "log", 1e-6, 1e-2),
        Gene("warmup_epochs", "float", 0.0, 5.0),
        Gene("box", "float", 1.0, 20.0),
        Gene("cls", "float", 0.2, 4.0),
        Gene("dfl", "float", 0.4, 6.0),
        Gene("hsv_h", "float", 0.0, 0.1),
        Gene("hsv_s", "float", 0.0, 0.9),
        Gene("hsv_v", "float", 0.0, 0.9),
        Gene("degrees", "float", 0.0, 45.0),
        Gene("translate", "float", 0.0, 0.9),
        Gene("scale", "float", 0.0, 0.9),
        Gene("fliplr", "float", 0.0, 1.0),
        Gene("mosaic", "float", 0.0, 1.0),
        Gene("mixup", "float", 0.0, 1.0),
        # images a step (gradients accumulated over nbs / batch batches): Ultralytics' 64 leaves a short training on
        # a small dataset a quarter of the steps of 16, and on the demo's shapes a third of its mAP50
        # (docs/measured-defaults.md)
        Gene("nbs", "cat", choices=(16, 32, 64)),
    ]
    if include_imgsz:
        genes.append(Gene("imgsz", "cat", choices=(320, 416, 512, 640)))
    if include_batch:
        genes.append(Gene("batch", "cat", choices=(8, 16, 32, 64)))
    return SearchSpace(tuple(genes))


# Ultralytics' nominal batch (`nbs`): gradients are accumulated over this many images before each optimizer step
NOMINAL_BATCH = 64


# Ultralytics' defaults for the searched genes: the first individual, so the search starts from the baseline
# a user would otherwise get (kept only where it fits the job's space). The optimizer is AdamW, as
# model.tune() sets it and as optimizer=auto picks for short trainings.
ULTRALYTICS_DEFAULTS: dict[str, Any] = {
    # what Ultralytics' trainer resolves optimizer=auto to for trainings under 10k iterations (every trial):
    # AdamW with momentum 0.9 and lr0 fitted to the number of classes (see auto_lr0)
    "optimizer": "AdamW", "lr0": 0.001429, "lrf": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "warmup_epochs": 3.0,
    "box": 7.5, "cls": 0.5, "dfl": 1.5, "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4, "degrees": 0.0,
    "translate": 0.1, "scale": 0.5, "fliplr": 0.5, "mosaic": 1.0, "mixup": 0.0, "nbs": NOMINAL_BATCH,
}


def auto_lr0(nc: int) -> float:
    """Ultralytics' optimizer=auto learning rate for AdamW: round(0.002 * 5 / (4 + nc), 6)."""
    return round(0.002 * 5 / (4 + nc), 6)


# Ultralytics' optimizer=auto picks SGD only for trainings of more than 10,000 iterations: its line between short
# trainings and long ones, used here for every rule that depends on training length
SHORT_TRAINING_ITERATIONS = 10_000


def training_iterations(n_train: int, epochs: int, batch: int, nbs: int = NOMINAL_BATCH) -> int:
    """The number Ultralytics' optimizer=auto decides by (BaseTrainer._setup_train): optimizer steps at the
    nominal batch, ceil(images / max(batch, nbs)) a epoch."""
    return math.ceil(n_train / max(batch, nbs)) * epochs


def is_short_training(iterations: int | None) -> bool:
    return iterations is not None and iterations <= SHORT_TRAINING_ITERATIONS


# half a decade: the step of the learning-rate factor in short_training_starts
LR0_STEP = 10 ** 0.5
# images a step in the short-training design's cells (the nbs gene's smallest choice)
SHORT_TRAINING_NBS = 16


def short_training_starts(start: Mapping[str, Any], task: str) -> list[dict[str, Any]]:
    """Starting points that screen the two settings deciding a short training, with `start` they form a 2x2 design.

    A training of a few hundred steps is decided by how fast it learns, and two of Ultralytics' defaults are made
    for long ones: lr0 (fitted to trainings of 10k+ steps) and mosaic (which only Ultralytics' last 10 epochs turn
    off). The two interact (docs/measured-defaults.md), which mutants moving one gene at a time from the defaults
    rarely find. The design (both factors first) costs at most three trials of the first generation; the search
    moves on from whichever cell wins. mosaic only applies to detect and segment trainings, so classify gets the
    learning-rate factor alone. The design's cells step every SHORT_TRAINING_NBS images, as they were measured:
    at Ultralytics' 64 a short training has too few steps for either factor to show."""
    start = {**start, "nbs": SHORT_TRAINING_NBS}
    faster = {**start, "lr0": start["lr0"] * LR0_STEP}
    if task == "classify":
        return [faster]
    return [{**faster, "mosaic": 0.0}, faster, {**start, "mosaic": 0.0}]


def for_training_length(space: SearchSpace, iterations: int | None) -> SearchSpace:
    """The space without SGD among the optimizers when trainings are too short for it (Ultralytics' own rule).

    SGD needs a learning rate about ten times Adam's and many more steps; in a short trial at an Adam-sized lr0
    it learns nothing (docs/measured-defaults.md), so each SGD
    draw wastes a trial of a small budget. Kept when it is the only choice left."""
    if not is_short_training(iterations):
        return space
    genes = []
    for gene in space.genes:
        if gene.name == "optimizer" and gene.kind == "cat" and "SGD" in gene.choices and len(gene.choices) > 1:
            gene = replace(gene, choices=tuple(c for c in gene.choices if c != "SGD"))
        genes.append(gene)
    return SearchSpace(tuple(genes), space.fixed)

# Ultralytics' default: mosaic, mixup, copy_paste and cutmix are turned off for the last close_mosaic epochs
# (BaseTrainer._do_train: `epoch >= epochs - close_mosaic`), so a training of that many epochs or fewer never uses them
CLOSE_MOSAIC = 10
MOSAIC_FAMILY = ("mosaic", "mixup", "copy_paste", "cutmix")
# loss gains of the detection-style losses (v8DetectionLoss and its segment/pose variants); classification's
# cross-entropy has none, and its augmentations (classify_augmentations) use neither geometry nor mosaic
DETECTION_ONLY = ("box", "cls", "dfl", "degrees", "translate", "shear", "perspective", "flipud", *MOSAIC_FAMILY)


def inert_genes(task: str, epochs: int, fixed: Mapping[str, Any]) -> dict[str, str]:
    """gene name -> why the trainer ignores it for this task and number of epochs."""
    why: dict[str, str] = {}
    if task == "classify":
        why.update({name: "classification training does not use it" for name in DETECTION_ONLY})
    close = int(fixed.get("close_mosaic", CLOSE_MOSAIC))
    if close and epochs <= close:
        for name in MOSAIC_FAMILY:
            why.setdefault(name, f"with {epochs} epochs <= close_mosaic ({close}) Ultralytics turns it off from "
                                 "the first epoch")
    if epochs <= 1:
        why["warmup_epochs"] = "a one-epoch training has no warm-up (Ultralytics caps it at epochs - 1)"
    return why


def without_inert_genes(space: SearchSpace, task: str, epochs: int,
                        defaults: Mapping[str, Any]) -> tuple[SearchSpace, dict[str, str]]:
    """The space with genes the trainer ignores fixed to their default, and why each one was. A space would
    keep at least one gene (the learning rate always acts)."""
    why = {name: reason for name, reason in inert_genes(task, epochs, space.fixed).items() if name in space.names}
    if not why or len(why) == len(space.genes):
        return space, {}
    genes = tuple(g for g in space.genes if g.name not in why)
    fixed = {**space.fixed, **{name: defaults[name] for name in why if name in defaults}}
    return SearchSpace(genes, fixed), why


# Fine-tuning a pretrained checkpoint: large lr0 jumps collapse pretrained weights (docs/measured-defaults.md). So the
# learning rate may move down freely but up by at most this factor, unless the job's search.space sets lr0 itself; and
# the first generation stays near the defaults.
FINE_TUNE_LR0_CEILING = 2.0
FINE_TUNE_STEP = 0.1  # a first-generation mutant's step, as a fraction of each gene's range (from scratch: 0.2)


def for_fine_tuning(space: SearchSpace, default_lr0: float) -> SearchSpace:
    """The space with lr0's upper bound at FINE_TUNE_LR0_CEILING x its default."""
    genes = []
    for gene in space.genes:
        if gene.name == "lr0" and gene.kind != "cat" and gene.high > default_lr0 * FINE_TUNE_LR0_CEILING > gene.low:
            gene = replace(gene, high=default_lr0 * FINE_TUNE_LR0_CEILING)
        genes.append(gene)
    return SearchSpace(tuple(genes), space.fixed)
