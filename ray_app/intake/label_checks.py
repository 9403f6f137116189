"""Every detection or segmentation label file checked against the class list and repaired where it can be."""

from __future__ import annotations

from collections import defaultdict

from yoloforge.ray_app.intake.items import Checker, Item, img2label
from yoloforge.ray_app.intake.labels import check_label_text
from yoloforge.ray_app.intake.layout import relative_name


def check_detect_labels(checker: Checker, names: list[str], task: str) -> None:
    by_split: dict[str, list[Item]] = defaultdict(list)
    for item in checker.items:
        by_split[item.split].append(item)
    for split, items in by_split.items():
        if not any(i.label_text is not None or (i.label_src and i.label_src.is_file()) for i in items):
            checker.add("labels_not_found", "error",
                        f"none of the {len(items)} {split} images has a label file; expected e.g. "
                        f"{relative_name(img2label(items[0].src), checker.root)}", items[0].src)
    for item in checker.items:
        if item.quarantined or item.label_src is None:
            continue
        converted = item.label_text is not None  # from COCO/VOC: problems name the annotation file and image
        if converted:
            text = item.label_text or ""
        elif not item.label_src.is_file():
            checker.add("label_missing", "warning", f"no label file ({relative_name(item.label_src, checker.root)}); "
                        "the image is used as a background with no objects", item.src, action="kept as background")
            continue
        else:
            try:
                text = item.label_src.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError) as err:
                checker.quarantine(item, "label_unreadable", f"cannot be read as text: {err}")
                continue
        w, h = item.size
        result = check_label_text(text, len(names), task, w, h)
        for issue in result.issues:
            message = f"image {item.src.name}, object {issue.line}: {issue.message}" if converted else issue.message
            line = None if converted else issue.line
            if result.quarantine:
                checker.quarantine(item, issue.code, message, line)
            else:
                checker.add(issue.code, "warning", message, item.label_src, line=line, action="repaired")
        item.clean_label, item.boxes = result.clean_text, result.boxes

