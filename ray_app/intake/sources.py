"""Where the images and labels come from: the items of a YOLO layout, of a COCO or VOC conversion, or of a
classification folder tree, and the class names of a data.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yoloforge.core.errors import DatasetError
from yoloforge.ray_app.intake.convert import Conversion
from yoloforge.ray_app.intake.images import IMG_SUFFIXES
from yoloforge.ray_app.intake.items import Checker, Item, img2label
from yoloforge.ray_app.intake.labels import looks_like_segment
from yoloforge.ray_app.intake.layout import SPLITS, Layout, relative_name


def list_images(folder: Path, checker: Checker) -> list[Path]:
    images = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix.lower() in IMG_SUFFIXES:
            images.append(p)
        elif p.suffix.lower() not in (".txt", ".cache", ".json", ".yaml", ".yml", ".md"):
            checker.add("unsupported_image", "warning",
                        f"'{p.suffix or p.name}' is not an image format Ultralytics reads; ignored", p,
                        action="ignored")
    return images


def parse_names(data: dict[str, Any], where: str) -> list[str]:
    names = data.get("names")
    if names is None:
        raise DatasetError("data.yaml has no names: the class names", where=where,
                           fix="add names: {0: first_class, 1: second_class}")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise DatasetError("names keys must be class ids 0, 1, 2, ...", where=where) from None
        if keys != list(range(len(keys))):
            raise DatasetError(f"names ids must run 0..{len(keys) - 1} without gaps; found {keys}", where=where,
                               fix="renumber the names mapping from 0")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not names:
        raise DatasetError("names must be a non-empty list or mapping", where=where)
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise DatasetError(f"nc is {nc} but {len(names)} names are given", where=where,
                           fix="make nc equal the number of names, or remove nc")
    return [str(n) for n in names]


def detect_items(checker: Checker, layout: Layout) -> None:
    root = layout.root
    for split, entries in layout.splits.items():
        seen: set[Path] = set()
        for k, entry in enumerate(entries):
            prefix = Path(str(k)) if len(entries) > 1 else Path()
            if entry.is_dir():
                images = list_images(entry, checker)
                rels = [prefix / p.relative_to(entry) for p in images]
                label_dir = img2label(entry / "x.jpg").parent
                expected = {img2label(p) for p in images}
                if label_dir.is_dir() and label_dir != entry:
                    for orphan in sorted(set(label_dir.rglob("*.txt")) - expected):
                        checker.add("label_orphan", "warning", "label file without an image; ignored", orphan,
                                    action="ignored")
            else:
                listed = [ln.strip() for ln in entry.read_text(errors="replace").splitlines() if ln.strip()]
                images = []
                for ln in listed:
                    p = Path(ln)
                    # Ultralytics reads './images/a.jpg' in a list relative to the list's folder
                    p = p if p.is_absolute() else (entry.parent / p)
                    if not p.is_file():
                        checker.add("image_missing", "warning", f"listed in {entry.name} but missing", p,
                                    action="ignored")
                        continue
                    images.append(p)
                rels = [prefix / Path(relative_name(p, root)) for p in images]
            stems: dict[Path, Path] = {}
            for image, rel in zip(images, rels, strict=True):
                if image in seen:
                    continue
                seen.add(image)
                label = img2label(image)
                if label in stems:
                    checker.add("label_stem_clash", "warning", f"shares its label file {label.name} with "
                                f"{relative_name(stems[label], root)}", image, action="quarantined")
                    checker.items.append(Item(split, image, rel, label, quarantined=True))
                    continue
                stems[label] = image
                checker.items.append(Item(split, image, rel, label))


def converted_items(checker: Checker, conversion: Conversion) -> None:
    """Items of a COCO or VOC dataset: the label text its annotations became, problems named by annotation file."""
    for finding in conversion.findings:
        checker.add(finding.code, finding.severity, finding.message, finding.file, action=finding.action)
    for split, converted in conversion.splits.items():
        stems: dict[str, Path] = {}
        for c in converted:
            rel = Path(c.image.name)
            if rel.stem in stems and stems[rel.stem] != c.image:  # two folders: keep both, by their own name
                rel = Path(relative_name(c.image, checker.root).replace("/", "_"))
            stems[rel.stem] = c.image
            checker.items.append(Item(split, c.image, rel, c.source, label_text=c.label))


def guess_task(items: list[Item]) -> str:
    sample = [i.label_text if i.label_text is not None else i.label_src.read_text(errors="replace")
              for i in items[:200] if i.label_text is not None or (i.label_src and i.label_src.is_file())]
    return "segment" if looks_like_segment(sample) else "detect"


def classify_layout(checker: Checker, root: Path, origins: dict[str, str]) -> list[str]:
    splits = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if "val" not in splits:  # Roboflow's classification export names it valid/
        alt = next((root / n for n in ("valid", "validation") if (root / n).is_dir()), None)
        if alt:
            splits["val"] = alt
    if "train" not in splits:
        raise DatasetError("classification layout needs a train/ folder with one sub-folder per class",
                           where=str(root), fix="arrange images as train/<class>/*.jpg and val/<class>/*.jpg")
    val_from_test = "val" not in splits and "test" in splits
    if val_from_test:  # Ultralytics validates on test/ when val/ is missing
        splits["val"] = splits.pop("test")
    origins.update({s: f"{relative_name(d, root)}/<class>/" for s, d in splits.items()})
    if val_from_test:
        origins["val"] += " (no val/ folder: validated on test/, as Ultralytics does)"
    class_dirs = {s: sorted(p.name for p in d.iterdir() if p.is_dir()) for s, d in splits.items()}
    names = class_dirs["train"]
    if not names:
        raise DatasetError("train/ has no class folders", where=str(splits["train"]),
                           fix="put each class's images in train/<class name>/")
    for split, classes in class_dirs.items():
        if split == "train":
            continue
        for extra in sorted(set(classes) - set(names)):
            checker.add("class_missing_in_train", "error", f"class '{extra}' has {split} images but no train "
                        "folder", splits[split] / extra)
        for missing in sorted(set(names) - set(classes)):
            checker.add("class_missing_in_val", "warning", f"class '{missing}' has no {split} images",
                        splits[split])
    index = {n: k for k, n in enumerate(names)}
    for split, folder in splits.items():
        for stray in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            checker.add("stray_file", "warning", f"file directly in {split}/, not in a class folder; ignored",
                        stray, action="ignored")
        for cls in class_dirs[split]:
            if cls not in index:
                continue
            images = list_images(folder / cls, checker)
            if not images:
                checker.add("empty_class", "warning", f"class folder '{cls}' has no images", folder / cls)
            for image in images:
                checker.items.append(Item(split, image, Path(cls) / image.relative_to(folder / cls),
                                          class_id=index[cls]))
    return names

