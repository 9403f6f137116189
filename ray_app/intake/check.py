"""Dataset intake: find the layout, check every image and label, and write a clean copy.

The user's files are only ever read. Everything intake repairs or leaves out goes into the run directory:
clean/ holds what training uses, quarantine/ holds copies of the files that were left out.
"""

from __future__ import annotations

from pathlib import Path

from yoloforge.core.errors import DatasetError, MissingInput
from yoloforge.ray_app.intake.clean import Intake
from yoloforge.ray_app.intake.convert import read_coco
from yoloforge.ray_app.intake.images import IMG_SUFFIXES
from yoloforge.ray_app.intake.items import Checker, Progress
from yoloforge.ray_app.intake.label_checks import check_detect_labels
from yoloforge.ray_app.intake.layout import SPLITS, extract_zip, recognise
from yoloforge.ray_app.intake.report import DatasetReport
from yoloforge.ray_app.intake.sources import classify_layout, converted_items, detect_items, guess_task, parse_names
from yoloforge.ray_app.intake.statistics import fill_stats
from yoloforge.ray_app.intake.voc import read_voc

__all__ = ["IMG_SUFFIXES", "Intake", "check_dataset"]


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
        raise MissingInput(f"dataset {source} does not exist", fix="check the path")
    if source.suffix.lower() == ".zip":
        if work_dir is None:
            raise DatasetError("a zip needs a folder to unpack into", where=str(source))
        source = extract_zip(source, Path(work_dir) / "source")
    elif source.is_file() and source.suffix.lower() not in (".yaml", ".yml"):
        raise DatasetError(f"{source.name} is neither a folder, a .zip nor a data.yaml", where=str(source))

    layout = recognise(source, task)
    checker = Checker(layout.root, progress)
    for note in layout.notes:
        checker.add(note.code, note.severity, note.message, note.file, action=note.action)
    origins = dict(layout.origins)
    if layout.format == "classify":
        task = "classify"
        names = classify_layout(checker, layout.root, origins)
    elif layout.format == "yolo":
        names = parse_names(layout.data, str(layout.data_yaml))
        detect_items(checker, layout)
        task = task or guess_task(checker.items)
    else:
        conversion = read_coco(layout.root, task) if layout.format == "coco" else read_voc(layout.root)
        if not conversion.names:
            raise DatasetError(f"the {layout.format.upper()} annotations name no classes", where=str(layout.root),
                               fix="export the dataset with its class list")
        names, origins = conversion.names, conversion.origins
        converted_items(checker, conversion)
        task = task or ("segment" if conversion.segments else "detect")
    if not checker.items:
        raise DatasetError("no images found in any split", where=str(source),
                           fix=f"supported formats: {', '.join(sorted(s[1:] for s in IMG_SUFFIXES))}")

    checker.check_images()
    if task != "classify":
        check_detect_labels(checker, names, task)
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
    fill_stats(report, checker)
    report.problems = checker.problems
    report.ok = not report.errors
    return Intake(report, checker.items, checker.root)

