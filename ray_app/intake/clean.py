"""The clean copy training uses, and the quarantine: copies of what intake left out (the user's files are
only ever read)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from yoloforge.ray_app.intake.items import Item, Progress
from yoloforge.ray_app.intake.layout import SPLITS
from yoloforge.ray_app.intake.report import DatasetReport


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
                copy(item.src, (quarantine if item.quarantined else clean) / item.split / item.rel)
            elif item.quarantined:
                copy(item.src, quarantine / "images" / item.split / item.rel)
                label = quarantine / "labels" / item.split / item.rel.with_suffix(".txt")
                if item.label_text is not None:
                    label.parent.mkdir(parents=True, exist_ok=True)
                    label.write_text(item.label_text, encoding="utf-8")
                elif item.label_src and item.label_src.is_file():
                    copy(item.label_src, label)
            else:
                copy(item.src, clean / "images" / item.split / item.rel)
                label = clean / "labels" / item.split / item.rel.with_suffix(".txt")
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(item.clean_label, encoding="utf-8")
            if progress:
                progress("copying clean set", 1, total)
        if task != "classify":
            splits = {s for s in (i.split for i in self.items if i.kept)}
            # no path: Ultralytics then reads the splits beside this file, so the folder can be moved
            data = {**{s: f"images/{s}" for s in SPLITS if s in splits},
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


def copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)

