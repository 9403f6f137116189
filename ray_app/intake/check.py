"""Dataset intake: find the layout, check every image and label, and write a clean copy.

The user's files are only ever read. Everything intake repairs or leaves out goes into the run directory:
clean/ holds what training uses, quarantine/ holds copies of the files that were left out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from yoloforge.core.errors import DatasetError
from yoloforge.ray_app.intake.convert import Conversion, read_coco, read_voc
from yoloforge.ray_app.intake.labels import check_label_text, looks_like_segment
from yoloforge.ray_app.intake.layout import SPLITS, Layout, extract_zip, recognise, relative_name
from yoloforge.ray_app.intake.report import DatasetReport, Problem, SplitStats, problem

# Ultralytics' IMG_FORMATS (ultralytics.data.utils); a test keeps the two in step.
IMG_SUFFIXES = frozenset(
    f".{s}" for s in ("avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp")
)
MIN_IMAGE_PX = 10
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


@dataclass
class Intake:
    """The outcome of a check: the report, and the items to copy into a clean dataset."""

    report: DatasetReport
    items: list[Item]
    root: Path

    def write_clean(self, dest: str | Path, progress: Progress | None = None) -> Path:
        """Copy kept images (with repaired labels) to dest/clean and left-out files to dest/quarantine."""
        dest = Path(dest)
        clean, quarantine = dest / "clean", dest / "quarantine"
        for d in (clean, quarantine):
            if d.exists():
                shutil.rmtree(d)
        task = self.report.task
        total = sum(not i.left_out for i in self.items)
        for item in self.items:
            if item.left_out:
                continue
            if task == "classify":  # rel is <class>/<file>
                _copy(item.src, (quarantine if item.quarantined else clean) / item.split / item.rel)
            elif item.quarantined:
                _copy(item.src, quarantine / "images" / item.split / item.rel)
                label = quarantine / "labels" / item.split / item.rel.with_suffix(".txt")
                if item.label_text is not None:
                    label.parent.mkdir(parents=True, exist_ok=True)
                    label.write_text(item.label_text, encoding="utf-8")
                elif item.label_src and item.label_src.is_file():
                    _copy(item.label_src, label)
            else:
                _copy(item.src, clean / "images" / item.split / item.rel)
                label = clean / "labels" / item.split / item.rel.with_suffix(".txt")
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(item.clean_label, encoding="utf-8")
            if progress:
                progress("copying clean set", 1, total)
        if task != "classify":
            splits = {s for s in (i.split for i in self.items if i.kept)}
            data = {"path": str(clean.resolve()), **{s: f"images/{s}" for s in SPLITS if s in splits},
                    "names": dict(enumerate(self.report.names))}
            clean.mkdir(parents=True, exist_ok=True)
            (clean / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        self.report.clean_dir = str(clean.resolve())
        self.report.quarantine_dir = str(quarantine.resolve()) if quarantine.exists() else None
        return clean

    @property
    def data_arg(self) -> str:
        """What Ultralytics' `data=` takes for the clean copy."""
        assert self.report.clean_dir, "write_clean first"
        clean = Path(self.report.clean_dir)
        return str(clean if self.report.task == "classify" else clean / "data.yaml")


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def _img2label(path: Path) -> Path:
    """Ultralytics' rule: the last /images/ in the path becomes /labels/, the suffix becomes .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = str(path)
    return Path(sb.join(s.rsplit(sa, 1)) if sa in s else s).with_suffix(".txt")


# --- the checker ----------------------------------------------------------------------------------------


class _Checker:
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
        self.add(code, "warning", message, item.label_src if code not in _IMAGE_CODES else item.src,
                 line=line, action="quarantined")

    # images --------------------------------------------------------------------------------------------

    def check_images(self) -> None:
        workers = min(8, 2 * (os.cpu_count() or 2))
        with ThreadPoolExecutor(workers) as pool:
            for item, verdict in zip(self.items, pool.map(_inspect_image, [i.src for i in self.items]), strict=True):
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
            self.add("val_missing", "error", "the dataset has no val split; accuracy cannot be measured without one")
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
            if not found or any(i.kept for i in found):
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
                     f"the model was trained on other classes (only in dataset: {', '.join(only_data[:8]) or '-'}; "
                     f"only in model: {', '.join(only_model[:8]) or '-'}); its head is re-trained")


_IMAGE_CODES = {"unsupported_image", "corrupt_image", "image_too_small", "image_too_large", "jpeg_truncated",
                "label_stem_clash"}


@dataclass
class _ImageVerdict:
    size: tuple[int, int] = (0, 0)
    digest: str = ""
    code: str | None = None
    message: str = ""


def _inspect_image(path: Path) -> _ImageVerdict:
    """Decode one image fully; never raises."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return _ImageVerdict(code="corrupt_image", message=f"cannot be read: {err.strerror or err}")
    verdict = _ImageVerdict(digest=hashlib.blake2b(data, digest_size=16).hexdigest())
    if not data:
        verdict.code, verdict.message = "corrupt_image", "empty file (0 bytes)"
        return verdict
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            verdict.size = im.size
    except Image.DecompressionBombError as err:
        verdict.code, verdict.message = "image_too_large", f"too large to decode safely: {err}"
        return verdict
    except Exception as err:  # PIL raises many types for broken files
        verdict.code, verdict.message = "corrupt_image", f"cannot be decoded: {err}"
        return verdict
    w, h = verdict.size
    if w < MIN_IMAGE_PX or h < MIN_IMAGE_PX:
        verdict.code, verdict.message = "image_too_small", f"{w}x{h} pixels, below {MIN_IMAGE_PX}x{MIN_IMAGE_PX}"
    elif path.suffix.lower() in (".jpg", ".jpeg") and data[-2:] != b"\xff\xd9":
        verdict.code, verdict.message = "jpeg_truncated", "JPEG lacks its end marker (truncated write?)"
    return verdict


def _list_images(folder: Path, checker: _Checker) -> list[Path]:
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


# --- detect / segment -------------------------------------------------------------------------------------


def _parse_names(data: dict[str, Any], where: str) -> list[str]:
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


def _detect_items(checker: _Checker, layout: Layout) -> None:
    root = layout.root
    for split, entries in layout.splits.items():
        seen: set[Path] = set()
        for k, entry in enumerate(entries):
            prefix = Path(str(k)) if len(entries) > 1 else Path()
            if entry.is_dir():
                images = _list_images(entry, checker)
                rels = [prefix / p.relative_to(entry) for p in images]
                label_dir = _img2label(entry / "x.jpg").parent
                expected = {_img2label(p) for p in images}
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
                label = _img2label(image)
                if label in stems:
                    checker.add("label_stem_clash", "warning", f"shares its label file {label.name} with "
                                f"{relative_name(stems[label], root)}", image, action="quarantined")
                    checker.items.append(Item(split, image, rel, label, quarantined=True))
                    continue
                stems[label] = image
                checker.items.append(Item(split, image, rel, label))


def _converted_items(checker: _Checker, conversion: Conversion) -> None:
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


def _check_detect_labels(checker: _Checker, names: list[str], task: str) -> None:
    by_split: dict[str, list[Item]] = defaultdict(list)
    for item in checker.items:
        by_split[item.split].append(item)
    for split, items in by_split.items():
        if not any(i.label_text is not None or (i.label_src and i.label_src.is_file()) for i in items):
            checker.add("labels_not_found", "error",
                        f"none of the {len(items)} {split} images has a label file; expected e.g. "
                        f"{relative_name(_img2label(items[0].src), checker.root)}", items[0].src)
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


def _guess_task(items: list[Item]) -> str:
    sample = [i.label_text if i.label_text is not None else i.label_src.read_text(errors="replace")
              for i in items[:200] if i.label_text is not None or (i.label_src and i.label_src.is_file())]
    return "segment" if looks_like_segment(sample) else "detect"


# --- classify -----------------------------------------------------------------------------------------


def _classify_layout(checker: _Checker, root: Path, origins: dict[str, str]) -> list[str]:
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
            images = _list_images(folder / cls, checker)
            if not images:
                checker.add("empty_class", "warning", f"class folder '{cls}' has no images", folder / cls)
            for image in images:
                checker.items.append(Item(split, image, Path(cls) / image.relative_to(folder / cls),
                                          class_id=index[cls]))
    return names


# --- entry point --------------------------------------------------------------------------------------


def check_dataset(
    path: str | Path,
    *,
    task: str | None = None,
    work_dir: str | Path | None = None,
    model_names: list[str] | None = None,
    allow_name_mismatch: bool = False,
    val_split: float | None = None,
    split_seed: int = 0,
    max_bad_fraction: float = 0.2,
    progress: Progress | None = None,
) -> Intake:
    """Check a dataset folder, data.yaml or .zip. Raises DatasetError only when it cannot be read at all."""
    source = Path(path).expanduser()
    if not source.exists():
        raise DatasetError(f"dataset {source} does not exist", fix="check the path (data: in job.yaml)")
    if source.suffix.lower() == ".zip":
        if work_dir is None:
            raise DatasetError("a zip needs a folder to unpack into", where=str(source))
        source = extract_zip(source, Path(work_dir) / "source")
    elif source.is_file() and source.suffix.lower() not in (".yaml", ".yml"):
        raise DatasetError(f"{source.name} is neither a folder, a .zip nor a data.yaml", where=str(source))

    layout = recognise(source, task)
    checker = _Checker(layout.root, progress)
    for note in layout.notes:
        checker.add(note.code, note.severity, note.message, note.file, action=note.action)
    origins = dict(layout.origins)
    if layout.format == "classify":
        task = "classify"
        names = _classify_layout(checker, layout.root, origins)
    elif layout.format == "yolo":
        names = _parse_names(layout.data, str(layout.data_yaml))
        _detect_items(checker, layout)
        task = task or _guess_task(checker.items)
    else:
        conversion = read_coco(layout.root, task) if layout.format == "coco" else read_voc(layout.root)
        if not conversion.names:
            raise DatasetError(f"the {layout.format.upper()} annotations name no classes", where=str(layout.root),
                               fix="export the dataset with its class list")
        names, origins = conversion.names, conversion.origins
        _converted_items(checker, conversion)
        task = task or ("segment" if conversion.segments else "detect")
    if not checker.items:
        raise DatasetError("no images found in any split", where=str(source),
                           fix=f"supported formats: {', '.join(sorted(s[1:] for s in IMG_SUFFIXES))}")

    checker.check_images()
    if task != "classify":
        _check_detect_labels(checker, names, task)
    checker.check_duplicates()
    split_info = checker.split_val(val_split, split_seed)
    if split_info:
        origins["val"] = f"{split_info['fraction']:g} of train, seed {split_info['seed']:g} (made by intake)"
    checker.check_bad_fraction(max_bad_fraction)
    checker.check_usable()
    checker.compare_names(names, model_names, allow_name_mismatch)
    report = DatasetReport(dataset=str(Path(path).expanduser().resolve()), task=task, layout=layout.format,
                           names=names, split_sources={s: origins[s] for s in SPLITS if s in origins},
                           val_split=split_info)
    _fill_stats(report, checker)
    report.problems = checker.problems
    report.ok = not report.errors
    return Intake(report, checker.items, checker.root)


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    q = np.percentile(values, [0, 5, 50, 95, 100])
    return {k: round(float(v), 2) for k, v in zip(("min", "p5", "median", "p95", "max"), q, strict=True)}


def _fill_stats(report: DatasetReport, checker: _Checker) -> None:
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
            "width_px": _percentiles(boxes[:, 1]),
            "height_px": _percentiles(boxes[:, 2]),
            "count_by_area": {"small (<32^2 px)": int((area < 32**2).sum()),
                              "medium": int(((area >= 32**2) & (area < 96**2)).sum()),
                              "large (>=96^2 px)": int((area >= 96**2).sum())},
        }
    sizes = np.array([i.size for i in kept_items if i.size != (0, 0)], dtype=float).reshape(-1, 2)
    formats = Counter(i.src.suffix.lower().lstrip(".") for i in kept_items)
    report.image_stats = {"width_px": _percentiles(sizes[:, 0]), "height_px": _percentiles(sizes[:, 1]),
                          "formats": dict(formats)}
