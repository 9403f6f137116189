"""The dataset's images as intake sees them (Item), and the checker that gathers them with the problems found:
what every check of intake reads and writes."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.ray_app.intake.images import IMAGE_CODES, inspect_image
from yoloforge.ray_app.intake.layout import SPLITS, relative_name
from yoloforge.ray_app.intake.report import Problem, problem

Progress = Callable[[str, int, int], None]  # (description, advance, total) for progress bars


@dataclass
class Item:
    """One image of the dataset and what intake decided about it."""

    split: str
    src: Path
    rel: Path  # path inside the split folder of the clean copy
    label_src: Path | None = None  # YOLO label file, or the COCO/VOC annotation file it was converted from
    label_text: str | None = None  # COCO/VOC: the YOLO label text its annotations became
    class_id: int | None = None  # classify layout
    size: tuple[int, int] = (0, 0)
    digest: str = ""
    quarantined: bool = False
    left_out: bool = False  # duplicate: not copied, not quarantined either
    clean_label: str = ""
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def kept(self) -> bool:
        return not (self.quarantined or self.left_out)


def img2label(path: Path) -> Path:
    """Ultralytics' rule: the last /images/ in the path becomes /labels/, the suffix becomes .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = str(path)
    return Path(sb.join(s.rsplit(sa, 1)) if sa in s else s).with_suffix(".txt")


class Checker:
    def __init__(self, root: Path, progress: Progress | None) -> None:
        self.root = root
        self.progress = progress
        self.problems: list[Problem] = []
        self.items: list[Item] = []

    def add(self, code: str, severity: str, message: str, file: Path | None = None, **kw: Any) -> None:
        self.problems.append(problem(code, severity, message,  # type: ignore[arg-type]
                                     file=relative_name(file, self.root) if file else None, **kw))

    def quarantine(self, item: Item, code: str, message: str, line: int | None = None) -> None:
        item.quarantined = True
        self.add(code, "warning", message, item.label_src if code not in IMAGE_CODES else item.src,
                 line=line, action="quarantined")

    # images --------------------------------------------------------------------------------------------

    def check_images(self) -> None:
        workers = min(8, 2 * (os.cpu_count() or 2))
        with ThreadPoolExecutor(workers) as pool:
            for item, verdict in zip(self.items, pool.map(inspect_image, [i.src for i in self.items]), strict=True):
                item.size, item.digest = verdict.size, verdict.digest
                if verdict.code:
                    if verdict.code == "jpeg_truncated":
                        self.add(verdict.code, "warning", verdict.message, item.src, action="kept")
                    else:
                        self.quarantine(item, verdict.code, verdict.message)
                if self.progress:
                    self.progress("checking images", 1, len(self.items))

    def check_duplicates(self) -> None:
        first: dict[str, Item] = {}
        order = {s: k for k, s in enumerate(SPLITS)}
        for item in sorted(self.items, key=lambda i: (order.get(i.split, 9), str(i.src))):
            if not item.kept or not item.digest:
                continue
            original = first.setdefault(item.digest, item)
            if original is item:
                continue
            item.left_out = True
            if original.split == item.split:
                self.add("duplicate_image", "warning", f"same bytes as {relative_name(original.src, self.root)}",
                         item.src, action="left out")
            else:
                self.add("duplicate_across_splits", "warning",
                         f"also in {original.split} as {relative_name(original.src, self.root)}: {item.split} "
                         "scores would be inflated", item.src, action=f"left out of {item.split}")

    def split_val(self, fraction: float | None, seed: int) -> dict[str, float] | None:
        if any(i.split == "val" for i in self.items):
            return None
        if fraction is None:
            self.add("val_missing", "error", "the dataset has no val split, or its val folder no image; "
                     "accuracy cannot be measured without one")
            return None
        train = sorted((i for i in self.items if i.split == "train" and i.kept), key=lambda i: str(i.src))
        rng = np.random.default_rng(seed)
        groups: dict[int | None, list[Item]] = defaultdict(list)
        for item in train:  # stratified by class for classify; one group otherwise
            groups[item.class_id].append(item)
        moved = 0
        for members in groups.values():
            k = max(1, round(len(members) * fraction)) if len(members) > 1 else 0
            for idx in rng.permutation(len(members))[:k]:
                members[idx].split = "val"
                moved += 1
        self.add("val_split_made", "warning", f"no val split: moved {moved} of {len(train)} train images to val "
                 f"(fraction {fraction}, seed {seed})", action="split in the clean copy")
        return {"fraction": fraction, "seed": float(seed)}

    def check_bad_fraction(self, limit: float) -> None:
        for split in SPLITS:
            found = [i for i in self.items if i.split == split]
            bad = sum(i.quarantined for i in found)
            if found and bad / len(found) > limit:
                self.add("too_many_bad", "error", f"{bad} of {len(found)} {split} images ({bad / len(found):.0%}) "
                         f"were quarantined, above the limit of {limit:.0%}: this looks systematic")

    def check_usable(self) -> None:
        """Training and validation each need at least one image that survived the checks."""
        for split in ("train", "val"):
            found = [i for i in self.items if i.split == split]
            if not found:
                # a missing val split is val_missing's (or was made from train); an empty one of either is this
                if split == "train" or not any(p.code == "val_missing" for p in self.problems):
                    self.add("split_empty", "error", f"the {split} split has no image: nothing to "
                             f"{'train on' if split == 'train' else 'measure accuracy with'}")
                continue
            if any(i.kept for i in found):
                continue
            bad = sum(i.quarantined for i in found)
            self.add("split_unusable", "error", f"no usable {split} image: {len(found)} found, {bad} quarantined, "
                     f"{len(found) - bad} duplicates of other images (each listed above)")

    def compare_names(self, names: list[str], model_names: list[str] | None, allow_mismatch: bool) -> None:
        if not model_names or names == model_names:
            return
        if sorted(names) == sorted(model_names):
            swaps = [f"id {k}: dataset '{a}' vs model '{b}'" for k, (a, b) in enumerate(zip(names, model_names,
                                                                                            strict=True)) if a != b]
            self.add("class_names_mismatch", "warning" if allow_mismatch else "error",
                     "the dataset names the model's classes in another order, so labels would be read as the wrong "
                     f"class: {'; '.join(swaps[:5])}")
        else:
            only_data = [n for n in names if n not in model_names]
            only_model = [n for n in model_names if n not in names]
            self.add("class_names_differ", "warning",
                     f"the model was trained on other classes ({len(model_names)} in the model, {len(names)} in the "
                     f"dataset; only in dataset: {', '.join(only_data[:8]) or '-'}; only in model: "
                     f"{', '.join(only_model[:8]) or '-'}{', ...' if len(only_model) > 8 else ''}): its head is "
                     "re-trained for the dataset's classes")

