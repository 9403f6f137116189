"""What intake found: problems (each with its file and a fix), statistics, and where the clean copy is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from yoloforge.core import atomic

Severity = Literal["error", "warning", "info"]  # info: what intake read in place of what was written

# code -> how to fix it; messages say what and where, this says what to do about it.
FIXES: dict[str, str] = {
    "data_yaml_missing": "add a data.yaml beside images/ and labels/ (the message shows one to start from)",
    "data_yaml_invalid": "fix the YAML in data.yaml (see https://docs.ultralytics.com/datasets/detect/)",
    "names_missing": "list the class names in data.yaml: names: {0: cat, 1: dog}",
    "names_invalid": "names must be a list or a mapping 0..nc-1 -> name, with no gaps",
    "nc_mismatch": "make nc equal the number of names, or drop nc",
    "split_missing": "point the split in data.yaml at an existing folder or .txt list of images, or remove it",
    "split_empty": "put images in that split (jpg, png, bmp, tif, webp, ...)",
    "val_missing": "add a val split, or let yoloforge make one: --split-val 0.2 (data.val_split in job.yaml)",
    "labels_not_found": "YOLO labels go in labels/ mirroring images/ (images/train/a.jpg -> labels/train/a.txt)",
    "unsupported_image": "convert it to jpg or png, or remove it from the images folder",
    "corrupt_image": "re-export or re-download the image; the clean copy leaves it out",
    "image_too_small": "images need at least 10x10 pixels",
    "image_too_large": "downscale it below 178 megapixels",
    "jpeg_truncated": "nothing: Ultralytics repairs it in the clean copy; re-export the original to be safe",
    "label_missing": "add an empty .txt if the image really has no objects, else label it",
    "label_orphan": "remove the label file or add its image",
    "label_unreadable": "save the label file as plain UTF-8 text",
    "not_a_number": "every value in a label line must be a number",
    "bad_columns": "detect: 'class x_center y_center width height'; segment: 'class x1 y1 x2 y2 x3 y3 ...'",
    "box_only_in_segment": "segmentation labels need polygons (class x1 y1 x2 y2 ...), not boxes",
    "class_out_of_range": "use class ids 0..nc-1 from data.yaml names, or add the missing names",
    "coords_out_of_range": "YOLO coordinates are fractions of the image size: divide x by width and y by height",
    "coords_clipped": "nothing: tiny overshoots were clipped to [0, 1] in the clean copy",
    "degenerate_box": "nothing: zero-size boxes were dropped in the clean copy; check the labelling tool",
    "duplicate_row": "nothing: duplicate label lines were dropped in the clean copy",
    "duplicate_image": "nothing: the copy was left out of the clean set; remove duplicates at the source",
    "duplicate_across_splits": "nothing: the val copy was left out; keep each image in one split only",
    "label_stem_clash": "rename one of the images: both map to the same label file",
    "too_many_bad": "fix the files listed above, or raise data.max_bad_fraction if you accept the loss",
    "class_names_mismatch": "reorder names in data.yaml to the model's order, or set data.allow_name_mismatch",
    "class_names_differ": "nothing if you are fine-tuning to new classes: the model's head is re-trained",
    "class_without_examples": "add labelled examples of that class, or remove it from names",
    "class_missing_in_train": "every val class needs a train folder of the same name",
    "class_missing_in_val": "add val images for that class, or accept that it is not measured",
    "stray_file": "classification images go in <split>/<class name>/; move or remove it",
    "empty_class": "add images to that class folder or remove it",
    "path_fallback": "nothing: write the path that was read into data.yaml to silence this",
    "split_unusable": "fix or replace the files listed above for that split; training needs at least one image",
    "image_missing": "put the image where the annotation file says, or re-export images and annotations together",
    "annotation_skipped": "nothing if those objects do not matter; else fix them in the labelling tool",
    "annotation_unreadable": "re-export the annotation file from the labelling tool",
    "crowd_skipped": "nothing: crowd regions (RLE masks) are not objects YOLO trains on",
    "category_dropped": "nothing: Roboflow's COCO export lists the dataset's own name as a category",
    "category_ids_remapped": "nothing: the clean copy numbers classes 0..n-1 in category-id order",
    "class_order_guessed": "add classes.txt (one name per line) in the order you want the class ids",
    "unknown_class": "add the name to labelmap.txt / classes.txt, or fix the object's name",
    "val_split_made": "nothing: a seeded split was made in the clean copy; your files are unchanged",
}


class Problem(BaseModel):
    """One thing wrong with the dataset."""

    code: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    action: str | None = Field(None, description="what intake did about it in the clean copy")
    fix: str | None = None


class SplitStats(BaseModel):
    images_found: int = 0
    images_clean: int = 0
    backgrounds: int = 0
    instances: int = 0
    quarantined: int = 0


class DatasetReport(BaseModel):
    """dataset_report.json"""

    dataset: str
    task: str
    layout: str = Field(description="yolo, coco, voc or classify")
    names: list[str]
    split_sources: dict[str, str] = Field(default_factory=dict, description="split -> where it was read from")
    ok: bool = True
    splits: dict[str, SplitStats] = Field(default_factory=dict)
    class_counts: dict[str, dict[str, dict[str, int]]] = Field(
        default_factory=dict, description="class name -> split -> {instances, images}"
    )
    box_stats: dict[str, dict[str, float]] = Field(default_factory=dict)
    image_stats: dict[str, dict[str, float] | dict[str, int]] = Field(default_factory=dict)
    problems: list[Problem] = Field(default_factory=list)
    clean_dir: str | None = None
    quarantine_dir: str | None = None
    val_split: dict[str, float] | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def write(self, path: str | Path) -> Path:
        """The report as JSON; the clean copy and the quarantine beside it are named relative to its folder, so
        the folder (a run directory) can be moved."""
        path = Path(path)
        body = self.model_dump(mode="json")
        base = path.parent.resolve()
        for key in ("clean_dir", "quarantine_dir"):
            if body[key] and Path(body[key]).resolve().is_relative_to(base):
                body[key] = os.path.relpath(Path(body[key]).resolve(), base)
        atomic.write_json(path, body)
        return path


def problem(code: str, severity: Severity, message: str, *, file: str | Path | None = None,
            line: int | None = None, action: str | None = None) -> Problem:
    return Problem(code=code, severity=severity, message=message, file=str(file) if file else None,
                   line=line, action=action, fix=FIXES.get(code))
