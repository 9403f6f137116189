"""What Ultralytics' trainer does with each searched hyperparameter at a given budget (ultralytics 8.4.190).

A gene the trainer ignores at the trial's budget cannot change its result: searching it only re-trains configs
already measured under another name. Those genes are fixed to Ultralytics' default before the search starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from yoloforge.ga.space import SearchSpace

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


# Fine-tuning a pretrained checkpoint. Measured (real COCO yolov8n.pt on a real 2-class Roboflow export, 8 epochs
# at 320 px): Ultralytics' defaults reached mAP50 0.61, lr0 x3.16 collapsed the pretrained weights (mAP50 ~0 in the
# first epochs, 0.41 at the end). So the learning rate may move down freely but up by at most this factor, unless
# the job's search.space sets lr0 itself; and the first generation stays near the defaults.
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
