"""COCO JSON read into YOLO label text, with every annotation problem counted and placed.

Ultralytics' `convert_coco` was measured for this and is not used: it maps category ids as `id - 1` (or COCO's
91->80 table), so the ids 0..n of Roboflow's COCO export, or any other numbering, give wrong or negative classes; it
raises on an annotation whose image is not listed, skips crowd annotations silently, never looks for the image files
and writes files of its own. Its `merge_multi_segment` (several polygons of one object joined into one outline, the
way Ultralytics trains on them) is used as it is. Nothing here writes: the label text goes into the clean copy.
Pascal VOC's reader is ray_app/intake/voc.py; both share the findings, the split rules and the label rows here.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.core.errors import DatasetError

# what a split's annotation file or folder may be called, as exporters name them
SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test", "default": "train", "trainval": "train"}


@dataclass
class Converted:
    """One image and the YOLO label text its annotations became."""

    image: Path
    label: str
    source: Path  # the annotation file it came from (problems name it)


@dataclass
class Finding:
    """A problem found while converting: code, message, the annotation file, what was done."""

    code: str
    message: str
    file: Path
    action: str
    severity: str = "warning"


@dataclass
class Conversion:
    names: list[str]
    splits: dict[str, list[Converted]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # split -> where it came from, for the report
    findings: list[Finding] = field(default_factory=list)
    segments: bool = False  # every object came with a polygon


def split_of(name: str) -> str | None:
    """'instances_train2017' -> train, 'valid' -> val, '_annotations.coco' -> None."""
    words = name.lower().replace("-", "_").replace(".", "_").split("_")
    for word in reversed(words):
        word = word.rstrip("0123456789")
        if word in SPLIT_WORDS:
            return SPLIT_WORDS[word]
    return None


def label_row(cls: int, values: list[float]) -> str:
    return f"{cls} " + " ".join(f"{v:.6g}" for v in values)


# --- COCO ---------------------------------------------------------------------------------------------------


def coco_files(root: Path) -> list[Path]:
    """COCO annotation files: annotations/*.json (COCO, CVAT), <split>/_annotations.coco.json (Roboflow's COCO
    export), or a COCO file at the root (Label Studio's result.json)."""
    found = sorted((root / "annotations").glob("*.json")) if (root / "annotations").is_dir() else []
    found += sorted(root.glob("*/_annotations.coco.json"))
    if not found:
        found = sorted(root.glob("*.json"))
    return [p for p in found if _looks_like_coco(p)]


def _looks_like_coco(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
    except OSError:
        return False
    return '"images"' in head and '"annotations"' in head


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetError(f"not valid JSON: {err.msg} at line {err.lineno}", where=f"{path}:{err.lineno}",
                           fix="re-export the annotations from the labelling tool") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"cannot be read: {err}", where=str(path)) from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DatasetError(f"a COCO file needs the lists {', '.join(missing)}", where=str(path),
                           fix="export in COCO format ('images', 'annotations' and 'categories')")
    return data


def _coco_names(files: dict[Path, dict[str, Any]]) -> tuple[list[str], list[Finding]]:
    """One list of class names over every file, in category-id order; categories no annotation uses that are
    only the supercategory of others (Roboflow's id 0) are left out."""
    used: set[str] = set()
    by_name: dict[str, int] = {}
    supers: set[str] = set()
    findings = []
    for data in files.values():
        ids = {c.get("id"): str(c.get("name")) for c in data["categories"]}
        used |= {ids[a["category_id"]] for a in data["annotations"] if a.get("category_id") in ids}
        for c in data["categories"]:
            by_name.setdefault(str(c.get("name")), int(c.get("id", 0)))
            if c.get("supercategory") and c.get("supercategory") != c.get("name"):
                supers.add(str(c["supercategory"]))
    names = []
    for name, _ in sorted(by_name.items(), key=lambda kv: kv[1]):
        if name in supers and name not in used:
            findings.append(Finding("category_dropped", f"category '{name}' (id {by_name[name]}) is only the "
                                    "supercategory of others and has no annotations; not a class",
                                    next(iter(files)), "left out of names"))
            continue
        names.append(name)
    original = [by_name[n] for n in names]
    if original != list(range(len(names))):
        mapping = ", ".join(f"{i}->{k} ({n})" for k, (n, i) in enumerate(zip(names, original, strict=True)))
        findings.append(Finding("category_ids_remapped", f"category ids are not 0..{len(names) - 1}; class ids "
                                f"in the clean copy: {mapping}", next(iter(files)), "remapped"))
    return names, findings


def _image_folders(json_path: Path, root: Path, split: str | None) -> list[Path]:
    """Where the images of one annotation file may be, most likely first."""
    bases = [json_path.parent, json_path.parent.parent, root, root / "images"]
    if split:
        bases += [root / "images" / split, root / split]
        for parent in (root, root / "images"):
            if parent.is_dir():
                bases += [p for p in sorted(parent.iterdir()) if p.is_dir() and split_of(p.name) == split]
    return list(dict.fromkeys(b for b in bases if b.is_dir()))


def _find_image(file_name: str, folders: list[Path]) -> Path | None:
    rel = Path(file_name)
    for base in folders:
        for candidate in (base / rel, base / rel.name):
            if candidate.is_file():
                return candidate
    return None


def read_coco(root: Path, task: str | None) -> Conversion:
    files = {p: _load_json(p) for p in coco_files(root)}
    names, findings = _coco_names(files)
    conversion = Conversion(names, findings=findings)
    polygons = boxes_only = 0
    for path, data in files.items():
        split = split_of(path.stem) or split_of(path.parent.name) or ("train" if len(files) == 1 else None)
        if split is None:
            raise DatasetError("cannot tell which split this annotation file is for", where=str(path),
                               fix="name it after its split: train.json, val.json (or instances_val.json)")
        index = {n: k for k, n in enumerate(names)}
        category = {c.get("id"): index.get(str(c.get("name"))) for c in data["categories"]}
        images = {im.get("id"): im for im in data["images"]}
        rows: dict[Any, list[str]] = {i: [] for i in images}
        skipped: Counter[str] = Counter()
        for ann in data["annotations"]:
            image = images.get(ann.get("image_id"))
            if image is None:
                skipped["unknown image id"] += 1
                continue
            cls = category.get(ann.get("category_id"))
            if cls is None:
                skipped[f"category id {ann.get('category_id')} not in categories"] += 1
                continue
            seg = ann.get("segmentation")
            if ann.get("iscrowd") or isinstance(seg, dict):
                skipped["crowd / RLE mask"] += 1
                continue
            w, h = float(image.get("width") or 0), float(image.get("height") or 0)
            bbox = ann.get("bbox") or []
            if w <= 0 or h <= 0 or len(bbox) != 4:
                skipped["no image size or no bbox"] += 1
                continue
            x, y, bw, bh = (float(v) for v in bbox)
            parts = [np.asarray(p, float).reshape(-1, 2) for p in (seg or []) if isinstance(p, list) and len(p) >= 6]
            if parts and task != "detect":
                polygons += 1
                outline = parts[0] if len(parts) == 1 else _merged(parts)
                rows[image.get("id")].append(label_row(cls, (outline / [w, h]).ravel().tolist()))
            else:
                boxes_only += not parts
                rows[image.get("id")].append(label_row(cls, [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]))
        for reason, count in sorted(skipped.items()):
            code = "crowd_skipped" if reason.startswith("crowd") else "annotation_skipped"
            conversion.findings.append(Finding(code, f"{count} annotation(s) skipped: {reason}", path, "skipped"))
        items = []
        missing = []
        folders = _image_folders(path, root, split)
        for image_id, image in images.items():
            found = _find_image(str(image.get("file_name", "")), folders)
            if found is None:
                missing.append(str(image.get("file_name")))
                continue
            items.append(Converted(found, "\n".join(rows[image_id]) + ("\n" if rows[image_id] else ""), path))
        if missing:
            conversion.findings.append(Finding(
                "image_missing", f"{len(missing)} image(s) listed but not found beside the annotations or in "
                f"images/: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}", path, "ignored"))
        conversion.splits.setdefault(split, []).extend(items)
        conversion.origins[split] = f"COCO {path.relative_to(root)}"
    if task is None and polygons and boxes_only:  # some objects have no outline: a detect dataset, boxes for all
        return read_coco(root, "detect")
    conversion.segments = polygons > 0 if task is None else task == "segment"
    return conversion


def _merged(parts: list[np.ndarray]) -> np.ndarray:
    from ultralytics.data.converter import merge_multi_segment

    return np.concatenate(merge_multi_segment([p.ravel().tolist() for p in parts]), axis=0)


# --- Pascal VOC ---------------------------------------------------------------------------------------------
