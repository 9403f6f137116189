"""What the engines stage writes and prints: engines.parquet, engines.png and the console's table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.table import Table
from yoloforge.core import atomic
from yoloforge.ray_app.console import console


def row_line(row: dict[str, Any], metric: str) -> str:
    if row.get("status") != "ok":
        return f"  {row['key']:<44} [yellow]{row['status']}[/yellow]: {row.get('reason')}"
    return (f"  {row['key']:<44} {row['throughput']:8.1f} img/s  p50 {row['p50_ms']:7.1f} ms  "
            f"p99 {row['p99_ms']:7.1f} ms  {metric} {row.get(metric, 0):.4f}")


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    columns = sorted({k for r in rows for k in r})
    table = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows])
    atomic.write_parquet(path, table)


def write_chart(rows: list[dict[str, Any]], selection: dict[str, Any], metric: str, fps: float | None,
                max_drop: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    fig, ax = plt.subplots(figsize=(8, 5))
    markers = {"fp32": "o", "fp16": "s", "int8": "^"}
    for backend in sorted({r["backend"] for r in ok}):
        for precision, marker in markers.items():
            pts = [r for r in ok if r["backend"] == backend and r["precision"] == precision]
            if pts:
                ax.scatter([r["throughput"] for r in pts], [r.get(metric) or 0 for r in pts], marker=marker,
                           label=f"{backend} {precision}", alpha=0.8)
    chosen = selection.get("chosen")
    if chosen:
        ax.scatter([chosen["throughput"]], [chosen.get(metric) or 0], s=300, facecolors="none", edgecolors="red",
                   linewidths=2, label="selected")
    if fps:
        ax.axvline(fps, color="grey", linestyle="--", label=f"target {fps:g} img/s")
    baseline = selection.get("baseline")
    if baseline and baseline.get(metric) is not None:
        ax.axhline(baseline[metric] - max_drop, color="grey", linestyle=":", label=f"accuracy floor (-{max_drop:g})")
    ax.set_xlabel("throughput (images/s)")
    ax.set_ylabel(metric)
    ax.set_title("Inference configurations: speed vs accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def print_rows(rows: list[dict[str, Any]], selection: dict[str, Any], metric: str) -> None:
    table = Table(title="Inference configurations", show_lines=False)
    for name in ("backend", "precision", "batch", "imgsz", "threads", "img/s", "p50 ms", "p99 ms", "RSS MB",
                 metric, "status"):
        table.add_column(name, justify="right" if name not in ("backend", "precision", "status") else "left")
    chosen = (selection.get("chosen") or {}).get("key")
    for r in sorted(rows, key=lambda r: -(r.get("throughput") or 0)):
        ok = r.get("status") == "ok"
        style = "bold green" if r.get("key") == chosen else ("dim" if not ok else None)
        table.add_row(r["backend"], r["precision"], str(r["batch"]), str(r["imgsz"]), str(r.get("threads") or "all"),
                      f"{r['throughput']:.1f}" if ok else "-", f"{r['p50_ms']:.1f}" if ok else "-",
                      f"{r['p99_ms']:.1f}" if ok else "-", f"{r['peak_rss_mb']:.0f}" if ok else "-",
                      f"{r.get(metric) or 0:.4f}" if ok else "-", "ok" if ok else r["status"], style=style)
    console.print(table)
    for line in selection["reasoning"]:
        console.print(f"  {line}")
    for line in selection["advice"]:
        console.print(f"  [yellow]What would help:[/yellow] {line}")


def json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)
