"""Which dataset layout a source holds, and where each split's files are.

A data.yaml decides (at the source's root or one folder down, as in a zip with a top folder); then COCO JSON,
then Pascal VOC XML; the class-folder guess of a classify dataset comes last and refuses folders that are really a
YOLO export without its data.yaml. data.yaml paths resolve as Ultralytics' trainer resolves them (`path:`, then
each split, with its `../` fallback), then one better: relative to data.yaml's own folder, the tail of a path written
on another machine, and `val`/`valid` folder names. Every fallback used is said in the report.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yoloforge.core.errors import DatasetError
from yoloforge.ray_app.intake.convert import coco_files, split_of
from yoloforge.ray_app.intake.voc import voc_folder

SPLITS = ("train", "val", "test")
Format = Literal["yolo", "coco", "voc", "classify"]
YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")


@dataclass
class Note:
    """Something the layout made intake do that the user should know (a fallback, a split left out)."""

    code: str
    message: str
    file: Path | None = None
    action: str | None = None
    severity: str = "info"


@dataclass
class Layout:
    format: Format
    root: Path  # the dataset's root: files in the report are named relative to it
    data_yaml: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)  # the data.yaml's content
    splits: dict[str, list[Path]] = field(default_factory=dict)  # yolo: folders or .txt image lists per split
    origins: dict[str, str] = field(default_factory=dict)  # split -> where it was read from, in words
    notes: list[Note] = field(default_factory=list)


# --- sources: folder, data.yaml, zip ------------------------------------------------------------------------


def extract_zip(path: Path, dest: Path) -> Path:
    """Unpack a dataset zip safely into dest and return the folder it unpacked into."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad:
                raise DatasetError(f"zip member {bad} is corrupt (CRC mismatch)", where=str(path),
                                   fix="re-create or re-download the archive")
            dest_resolved = dest.resolve()
            for member in zf.infolist():
                target = (dest / member.filename).resolve()
                if not target.is_relative_to(dest_resolved):
                    raise DatasetError(f"zip member '{member.filename}' would be written outside the folder",
                                       where=str(path), fix="re-create the archive with relative paths")
            if dest.exists():
                shutil.rmtree(dest)
            zf.extractall(dest)
    except zipfile.BadZipFile as err:
        raise DatasetError(f"not a readable zip file ({err})", where=str(path),
                           fix="pass the dataset folder, or re-create the zip") from None
    entries = [p for p in dest.iterdir() if p.name != "__MACOSX"]
    # archives often hold one top folder; descend into it
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def find_data_yaml(root: Path) -> Path | None:
    """data.yaml at the root, or in the one sub-folder that has one."""
    for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir() and p.name != "__MACOSX")):
        found = [folder / n for n in YAML_NAMES if (folder / n).is_file()]
        if not found and folder == root:
            yamls = sorted(root.glob("*.y*ml"))
            found = yamls if len(yamls) == 1 else []
        if found:
            return found[0]
    return None


def load_data_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        raise DatasetError(f"data.yaml is not valid YAML: {err.problem}", where=f"{path}:{line}",
                           fix="fix the YAML syntax on that line") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DatasetError(f"data.yaml cannot be read: {err}", where=str(path)) from None
    if not isinstance(data, dict):
        raise DatasetError("data.yaml must be a mapping with train:, val: and names:", where=str(path),
                           fix="see https://docs.ultralytics.com/datasets/detect/")
    if "val" not in data and "validation" in data:  # Ultralytics renames it too
        data["val"] = data.pop("validation")
    return data


# --- data.yaml paths -----------------------------------------------------------------------------------------


def relative_name(path: Path, root: Path) -> str:
    """The path as the report shows it: relative to the dataset's root where it is inside it."""
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def declared_root(data_yaml: Path) -> Path | None:
    """The existing folder a data.yaml's `path:` names, as Ultralytics reads it (None: no such folder)."""
    try:
        said = (yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}).get("path")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return _existing_root(data_yaml.parent, said)


def _existing_root(here: Path, said: Any) -> Path | None:
    if not said:
        return None
    candidate = Path(str(said)).expanduser()
    candidate = candidate if candidate.is_absolute() else here / candidate
    return candidate.resolve() if candidate.is_dir() else None


def _dataset_root(data_yaml: Path, data: dict[str, Any], notes: list[Note]) -> Path:
    here = data_yaml.parent
    if not data.get("path"):
        return here
    candidate = _existing_root(here, data["path"])
    if candidate is not None:
        if candidate != here.resolve():  # a copied dataset still reads its original: say so
            notes.append(Note("path_elsewhere", f"data.yaml's path: {data['path']} is another folder: the images "
                              "and labels are read from there, not from this one", data_yaml,
                              f"read {candidate}"))
        return candidate
    # data.yaml files often carry a path from the machine they were made on
    notes.append(Note("path_fallback", f"path: {data['path']} does not exist here; read the splits relative to "
                      "data.yaml's folder instead", data_yaml, "used data.yaml's folder"))
    return here


def _swapped_val(entry: str) -> list[str]:
    parts = entry.split("/")
    out = []
    for k, part in enumerate(parts):
        for other in {"val": ("valid", "validation"), "valid": ("val",), "validation": ("val", "valid")}.get(part, ()):
            out.append("/".join([*parts[:k], other, *parts[k + 1:]]))
    return out


def _candidates(entry: str, base: Path, here: Path) -> list[tuple[Path, str | None]]:
    """Where a split entry may be, in order, each with the fallback's name (None: as written)."""
    said = Path(entry).expanduser()
    if said.is_absolute():
        tails = [Path(*said.parts[k:]) for k in range(1, len(said.parts))]
        return [(said, None)] + [(here / t, "the tail of a path from another machine") for t in tails]
    out: list[tuple[Path, str | None]] = [(base / said, None)]
    if entry.startswith("../"):
        out.append((base / entry[3:], "Ultralytics' ../ fallback"))
    if here != base:
        out += [(here / said, "relative to data.yaml's folder")]
        if entry.startswith("../"):
            out.append((here / entry[3:], "relative to data.yaml's folder, without ../"))
    out += [(base / alt, "val/valid folder names") for alt in _swapped_val(entry)]
    return out


def _resolve_split(split: str, value: Any, base: Path, data_yaml: Path,
                   notes: list[Note]) -> tuple[list[Path], str] | None:
    entries = value if isinstance(value, list) else [value]
    found, origins = [], []
    for entry in entries:
        tried = _candidates(str(entry), base, data_yaml.parent)
        hit = next(((p, how) for p, how in tried if p.exists()), None)
        if hit is None:
            looked = ", ".join(dict.fromkeys(str(p.resolve()) for p, _ in tried[:3]))
            if split == "test":
                notes.append(Note("split_missing", f"test: {entry} does not exist (looked at {looked}); the "
                                  "dataset has no test split", data_yaml, "no test split", "warning"))
                return None
            raise DatasetError(f"{split}: {entry} does not exist (looked at {looked})", where=str(data_yaml),
                               fix="point it at a folder of images or a .txt list of image paths")
        path, how = hit
        shown = relative_name(path.resolve(), base.resolve())
        if how:
            notes.append(Note("path_fallback", f"{split}: {entry} does not exist as written; read {shown} "
                              f"instead ({how})", data_yaml, f"read {shown}"))
            origins.append(f"{shown} (data.yaml says {entry})")
        else:
            origins.append(shown)
        found.append(path)
    return found, ", ".join(origins)


def yolo_layout(data_yaml: Path) -> Layout:
    data = load_data_yaml(data_yaml)
    notes: list[Note] = []
    base = _dataset_root(data_yaml, data, notes)
    layout = Layout("yolo", base, data_yaml, data, notes=notes)
    for split in SPLITS:
        if not data.get(split):
            if split == "train":
                raise DatasetError("data.yaml has no train: split", where=str(data_yaml),
                                   fix="add train: images/train (a folder of images)")
            continue
        resolved = _resolve_split(split, data[split], base, data_yaml, notes)
        if resolved:
            layout.splits[split], layout.origins[split] = resolved
    return layout


# --- which layout -------------------------------------------------------------------------------------------


def _class_folders(root: Path) -> list[str] | None:
    train = root / "train"
    if not train.is_dir():
        return None
    folders = sorted(p.name for p in train.iterdir() if p.is_dir())
    return folders or None


def suggest_data_yaml(root: Path) -> str:
    """A data.yaml for a YOLO folder that has none: its splits (images-first or split-first), class ids seen."""
    lines = ["path: ."]
    for split in SPLITS:
        for folder in (root / "images" / split, *(p / "images" for p in sorted(root.iterdir())
                                                  if p.is_dir() and split_of(p.name) == split)):
            if folder.is_dir():
                lines.append(f"{split}: {relative_name(folder, root)}")
                break
    if len(lines) == 1:
        lines += ["train: images/train", "val: images/val"]
    max_id = -1
    for label in sorted(root.rglob("labels/**/*.txt"))[:500]:
        for line in label.read_text(errors="replace").splitlines()[:50]:
            parts = line.split()
            if parts and parts[0].isdigit():
                max_id = max(max_id, int(parts[0]))
    lines.append("names:")
    lines += [f"  {k}: class{k}   # the real name of class {k}" for k in range(max(max_id + 1, 1))]
    return "\n".join(lines)


def recognise(source: Path, task: str | None) -> Layout:
    """The layout of a folder or data.yaml (a zip is unpacked before)."""
    if source.is_file():
        return yolo_layout(source)
    if task == "classify":
        return Layout("classify", source)
    data_yaml = find_data_yaml(source)
    if data_yaml is not None:
        return yolo_layout(data_yaml)
    if coco_files(source):
        return Layout("coco", source)
    if voc_folder(source):
        return Layout("voc", source)
    folders = _class_folders(source)
    if folders and set(folders) <= {"images", "labels"}:
        raise DatasetError(
            f"train/ holds {' and '.join(f'{f}/' for f in folders)}: this is a YOLO export (Roboflow's layout) "
            "without its data.yaml, not a classification dataset with classes named 'images' and 'labels'",
            where=str(source), fix=f"add the export's data.yaml, e.g. {source / 'data.yaml'}:\n"
                                   f"{suggest_data_yaml(source)}")
    if folders and not (source / "images").is_dir():
        if task in ("detect", "segment"):
            raise DatasetError(f"this is a classification layout (train/<class>/) but the task is {task}",
                               where=str(source), fix="set task: classify, or give a detect/segment dataset")
        return Layout("classify", source)
    if (source / "images").is_dir() or any((p / "images").is_dir() for p in source.iterdir() if p.is_dir()):
        raise DatasetError("no data.yaml: it says where the splits are and names the classes", where=str(source),
                           fix=f"create {source / 'data.yaml'} like this:\n{suggest_data_yaml(source)}")
    raise DatasetError(
        "not a dataset layout yoloforge knows: expected data.yaml + images/labels folders (YOLO, as Ultralytics "
        "and Roboflow write them), annotations/*.json (COCO), Annotations/*.xml (Pascal VOC), or train/ and val/ "
        "folders with one sub-folder per class (classify)", where=str(source),
        fix="see docs/datasets.md (in yoloforge's repository) for the layouts and an example of each")
