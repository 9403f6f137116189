"""Pascal VOC XML (one .xml per image, ImageSets/Main split lists) read into YOLO label text, with every
annotation problem counted and placed (ray_app/intake/convert.py's findings and rows)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from yoloforge.ray_app.intake.convert import Conversion, Converted, Finding, label_row, split_of


def voc_folder(root: Path) -> Path | None:
    for name in ("Annotations", "annotations"):
        if (root / name).is_dir() and any((root / name).glob("*.xml")):
            return root / name
    return None


def _voc_names(root: Path, xmls: dict[Path, ET.Element]) -> tuple[list[str], list[Finding]]:
    """Names from labelmap.txt (CVAT), classes.txt or labels.txt when present; else every name, sorted."""
    for listing in ("labelmap.txt", "classes.txt", "labels.txt"):
        path = root / listing
        if path.is_file():
            names = [ln.split(":")[0].strip() for ln in path.read_text(errors="replace").splitlines()
                     if ln.strip() and not ln.startswith("#")]
            return [n for n in names if n and n != "background"], []
    found = sorted({(o.findtext("name") or "").strip() for x in xmls.values() for o in x.iter("object")} - {""})
    return found, [Finding("class_order_guessed", f"no labelmap.txt or classes.txt: class ids follow the names' "
                           f"alphabetical order ({', '.join(found[:10])})", root, "sorted")]


def _voc_splits(root: Path, xmls: list[Path]) -> tuple[dict[str, list[Path]], dict[str, str]]:
    main = root / "ImageSets" / "Main"
    stems = {p.stem: p for p in xmls}
    splits: dict[str, list[Path]] = {}
    origins = {}
    lists = sorted(main.glob("*.txt")) if main.is_dir() else []
    for listing in lists:
        split = split_of(listing.stem)
        if split is None or (listing.stem == "trainval" and any(split_of(p.stem) == "val" for p in lists)):
            continue  # per-class lists (cat_train.txt) and trainval beside train/val
        ids = [ln.split()[0] for ln in listing.read_text(errors="replace").splitlines() if ln.strip()]
        splits.setdefault(split, []).extend(stems[i] for i in ids if i in stems)
        origins[split] = f"VOC {listing.relative_to(root)}"
    if not splits:
        splits, origins = {"train": xmls}, {"train": "VOC Annotations/ (no ImageSets/Main lists: all is train)"}
    return splits, origins


def read_voc(root: Path) -> Conversion:
    folder = voc_folder(root)
    assert folder is not None
    xmls: dict[Path, ET.Element] = {}
    broken = []
    for path in sorted(folder.glob("*.xml")):
        try:
            xmls[path] = ET.parse(path).getroot()
        except ET.ParseError as err:
            broken.append(Finding("annotation_unreadable", f"not valid XML: {err}", path, "ignored"))
    names, findings = _voc_names(root, xmls)
    conversion = Conversion(names, findings=broken + findings)
    index = {n: k for k, n in enumerate(names)}
    splits, conversion.origins = _voc_splits(root, list(xmls))
    for split, paths in splits.items():
        items = []
        for path in paths:
            xml = xmls[path]
            file_name = (xml.findtext("filename") or f"{path.stem}.jpg").strip()
            image = next((p for p in (root / "JPEGImages" / file_name, root / "images" / file_name,
                                      path.parent / file_name, root / file_name) if p.is_file()), None)
            if image is None:
                conversion.findings.append(Finding("image_missing", f"its image {file_name} is not in JPEGImages/",
                                                   path, "ignored"))
                continue
            w = float(xml.findtext("size/width") or 0)
            h = float(xml.findtext("size/height") or 0)
            if w <= 0 or h <= 0:
                from PIL import Image

                with Image.open(image) as im:
                    w, h = im.size
            rows = []
            for obj in xml.iter("object"):
                name = (obj.findtext("name") or "").strip()
                if name not in index:
                    conversion.findings.append(Finding("unknown_class", f"object '{name}' is not in the class list "
                                                       f"({', '.join(names[:10])})", path, "skipped"))
                    continue
                try:
                    x1, y1, x2, y2 = (float(obj.findtext(f"bndbox/{k}") or "nan")
                                      for k in ("xmin", "ymin", "xmax", "ymax"))
                except ValueError:
                    x1 = float("nan")
                if not np.isfinite([x1, y1, x2, y2]).all():
                    conversion.findings.append(Finding("annotation_skipped", f"object '{name}' has no numeric "
                                                       "bndbox", path, "skipped"))
                    continue
                # VOC counts pixels from 1 (Ultralytics' VOC.yaml converter subtracts the same 1)
                rows.append(label_row(index[name], [((x1 + x2) / 2 - 1) / w, ((y1 + y2) / 2 - 1) / h,
                                               (x2 - x1) / w, (y2 - y1) / h]))
            items.append(Converted(image, "\n".join(rows) + ("\n" if rows else ""), path))
        conversion.splits[split] = items
    return conversion
