"""Everything yoloforge prints: progress bars, the dataset summary, model facts, errors."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from yoloforge.core.errors import YoloforgeError
from yoloforge.ray_app.intake.report import DatasetReport
from yoloforge.ray_app.zoo import ModelInfo

# piped output (CI logs, files) gets 120 columns instead of rich's 80, so tables keep their trial ids
console = Console(highlight=False, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120)
MAX_FILES_PER_PROBLEM = 5


@contextmanager
def progress_bars() -> Iterator:
    """A callback (description, advance, total) that drives one rich bar per description."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        tasks: dict[str, int] = {}

        def advance(description: str, step: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = progress.add_task(description, total=total)
            progress.update(tasks[description], advance=step, total=total)

        yield advance


def print_error(err: YoloforgeError) -> None:
    body = f"{err.where}: {err.message}" if err.where else err.message
    if err.fix:
        body += f"\n\n[bold]How to fix:[/bold] {err.fix}"
    console.print(Panel(body, title=f"[red]{type(err).__name__}[/red]", border_style="red", expand=False))


def print_model(info: ModelInfo) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("model", info.path)
    table.add_row("source", info.source)
    table.add_row("task", info.task)
    table.add_row("architecture", info.architecture)
    table.add_row("input size", f"{info.imgsz} px")
    classes = "untrained (built from .yaml)" if info.names is None else (
        f"{len(info.names)}: " + ", ".join(info.names[:12]) + (" ..." if len(info.names) > 12 else ""))
    table.add_row("classes", classes)
    table.add_row("parameters", f"{info.params / 1e6:.2f} M")
    table.add_row("GFLOPs", f"{info.gflops:.1f} at {info.imgsz} px")
    console.print(table)


LAYOUT_WORDS = {"yolo": "YOLO labels (data.yaml)", "coco": "COCO JSON, converted to YOLO labels",
                "voc": "Pascal VOC XML, converted to YOLO labels", "classify": "class folders (classification)"}


def print_report(report: DatasetReport, report_path: str | None = None) -> None:
    console.print(f"[bold]Dataset[/bold] {report.dataset}")
    names = ", ".join(report.names[:8]) + (", ..." if len(report.names) > 8 else "")
    console.print(f"  read as: {LAYOUT_WORDS.get(report.layout, report.layout)}, task {report.task}, "
                  f"{len(report.names)} classes ({names})", markup=False)
    for split, origin in report.split_sources.items():
        console.print(f"  {split}: {origin}", markup=False)
    splits = Table(title="Images per split")
    for col in ("split", "found", "clean", "quarantined", "backgrounds", "objects"):
        splits.add_column(col, justify="right" if col != "split" else "left")
    for name, s in report.splits.items():
        splits.add_row(name, str(s.images_found), str(s.images_clean), str(s.quarantined), str(s.backgrounds),
                       str(s.instances) if report.task != "classify" else "-")
    console.print(splits)

    per_class = Table(title="Per class (" + ("images" if report.task == "classify" else "objects / images") + ")")
    per_class.add_column("id", justify="right")
    per_class.add_column("class")
    split_names = list(report.splits)
    for s in split_names:
        per_class.add_column(s, justify="right")
    for k, name in enumerate(report.names):
        cells = []
        for s in split_names:
            c = report.class_counts.get(name, {}).get(s, {"instances": 0, "images": 0})
            cells.append(str(c["images"]) if report.task == "classify" else f"{c['instances']} / {c['images']}")
        per_class.add_row(str(k), name, *cells)
    console.print(per_class)

    if report.box_stats.get("width_px"):
        w, h = report.box_stats["width_px"], report.box_stats["height_px"]
        areas = report.box_stats["count_by_area"]
        console.print(f"Box size (px): width {w['min']:g} / {w['median']:g} / {w['max']:g}, height "
                      f"{h['min']:g} / {h['median']:g} / {h['max']:g} (min / median / max); "
                      + ", ".join(f"{k}: {v}" for k, v in areas.items()))

    grouped = defaultdict(list)
    for p in report.problems:
        grouped[(p.severity, p.code)].append(p)
    rank = {"error": 0, "warning": 1, "info": 2}
    for (severity, code), items in sorted(grouped.items(), key=lambda kv: (rank.get(kv[0][0], 3), kv[0][1])):
        colour = {"error": "red", "warning": "yellow"}.get(severity, "cyan")
        console.print(f"[{colour}]{severity.upper()}[/{colour}] {code} ({len(items)})"
                      + (f" -> {items[0].action}" if items[0].action else ""))
        for p in items[:MAX_FILES_PER_PROBLEM]:
            where = f"{p.file}" + (f":{p.line}" if p.line else "") + ": " if p.file else ""
            console.print(f"    {where}{p.message}", markup=False)
        if len(items) > MAX_FILES_PER_PROBLEM:
            console.print(f"    ... and {len(items) - MAX_FILES_PER_PROBLEM} more (see dataset_report.json)")
        if items[0].fix:
            console.print(f"    fix: {items[0].fix}", markup=False)
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = "[green]OK[/green]" if report.ok else "[red]NOT USABLE[/red] (errors stop the run)"
    console.print(f"{verdict}: {n_err} error(s), {n_warn} warning(s)"
                  + (f"; full report: {report_path}" if report_path else ""))
