"""`yoloforge models`: the official models yoloforge can download, and what a checkpoint holds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from yoloforge.ray_app.console import console, print_model
from yoloforge.ray_app.exits import friendly

models_app = typer.Typer(help="The model zoo, and custom checkpoints.", invoke_without_command=True)


@models_app.callback()
@friendly
def models_list(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option(help="Only this task")] = None,
    family: Annotated[str | None, typer.Option(help="Only this family, e.g. yolo11")] = None,
) -> None:
    """List the official models yoloforge can download (and which are cached)."""
    if ctx.invoked_subcommand:
        return
    from yoloforge.ray_app.zoo import cache_dir, zoo

    cached = {p.name for p in cache_dir().glob("*.pt")}
    table = Table(title="Official Ultralytics models (any of them also works as .yaml, trained from scratch)")
    for col in ("family", "detect", "segment", "classify"):
        table.add_column(col)
    rows: dict[str, dict[str, list[str]]] = {}
    for e in zoo():
        if (task and e.task != task) or (family and e.family != family):
            continue
        rows.setdefault(e.family, {}).setdefault(e.task, []).append(e.name + (" *" if e.name in cached else ""))
    for fam, tasks in rows.items():
        table.add_row(fam, *("\n".join(tasks.get(t, [])) or "-" for t in ("detect", "segment", "classify")))
    console.print(table)
    console.print("* = in the cache. Or give model: path/to/best.pt (your own) or model: yolo11n.yaml (from scratch).")


@models_app.command("inspect")
@friendly
def models_inspect(path: Annotated[str, typer.Argument(help="A .pt checkpoint, a .yaml, or an official name")]) -> None:
    """Show a model's task, classes, input size and cost."""
    from yoloforge.ray_app.zoo import resolve_model

    with console.status(f"loading {path}"):
        info = resolve_model(path)
    print_model(info)
