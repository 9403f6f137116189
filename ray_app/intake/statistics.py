"""The dataset's statistics for the report: images per split, instances per class, box and image sizes."""

from __future__ import annotations

from collections import Counter

import numpy as np
from yoloforge.ray_app.intake.items import Checker
from yoloforge.ray_app.intake.layout import SPLITS
from yoloforge.ray_app.intake.report import DatasetReport, SplitStats


def percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    q = np.percentile(values, [0, 5, 50, 95, 100])
    return {k: round(float(v), 2) for k, v in zip(("min", "p5", "median", "p95", "max"), q, strict=True)}


def fill_stats(report: DatasetReport, checker: Checker) -> None:
    names = report.names
    counts: dict[str, dict[str, dict[str, int]]] = {n: {} for n in names}
    for split in SPLITS:
        items = [i for i in checker.items if i.split == split]
        if not items:
            continue
        kept = [i for i in items if i.kept]
        stats = SplitStats(images_found=len(items), images_clean=len(kept),
                           quarantined=sum(i.quarantined for i in items))
        per_class_inst: Counter[int] = Counter()
        per_class_img: Counter[int] = Counter()
        for item in kept:
            if report.task == "classify":
                per_class_inst[item.class_id or 0] += 1
                per_class_img[item.class_id or 0] += 1
                continue
            classes = item.boxes[:, 0].astype(int)
            stats.instances += len(classes)
            stats.backgrounds += len(classes) == 0
            per_class_inst.update(classes.tolist())
            per_class_img.update(set(classes.tolist()))
        report.splits[split] = stats
        for k, name in enumerate(names):
            counts[name][split] = {"instances": per_class_inst[k], "images": per_class_img[k]}
        if split in ("train", "val"):
            for k, name in enumerate(names):
                if per_class_inst[k] == 0:
                    checker.add("class_without_examples", "warning", f"class '{name}' (id {k}) has no {split} "
                                "examples")
    report.class_counts = counts
    kept_items = [i for i in checker.items if i.kept]
    if report.task != "classify":
        boxes = np.concatenate([i.boxes for i in kept_items]) if kept_items else np.zeros((0, 3))
        area = boxes[:, 1] * boxes[:, 2]
        report.box_stats = {
            "width_px": percentiles(boxes[:, 1]),
            "height_px": percentiles(boxes[:, 2]),
            "count_by_area": {"small (<32^2 px)": int((area < 32**2).sum()),
                              "medium": int(((area >= 32**2) & (area < 96**2)).sum()),
                              "large (>=96^2 px)": int((area >= 96**2).sum())},
        }
    sizes = np.array([i.size for i in kept_items if i.size != (0, 0)], dtype=float).reshape(-1, 2)
    formats = Counter(i.src.suffix.lower().lstrip(".") for i in kept_items)
    report.image_stats = {"width_px": percentiles(sizes[:, 0]), "height_px": percentiles(sizes[:, 1]),
                          "formats": dict(formats)}

