"""Ranking the configurations that meet every target by what the bundle's Go server delivers with each: throwaway
bundles measured as the export measures its own (the rules are engines/delivery_ranking.py's)."""

from __future__ import annotations

import shutil
from typing import Any

from rich.markup import escape
from yoloforge.core.ports import free_port
from yoloforge.core.rundir import RunDir
from yoloforge.engines.base import EngineConfig
from yoloforge.engines.delivery_ranking import bundle_candidates, rank_by_delivery
from yoloforge.ray_app.console import console
from yoloforge.ray_app.spec import JobSpec
from yoloforge.serving.bundle import (
    DELIVERY_CLIENTS,
    DELIVERY_S,
    BundleError,
    build_server,
    layout,
    measure_delivery,
    server_cannot_run,
)
from yoloforge.serving.served import NotServable, ServedModel


def rank_by_bundle(spec: JobSpec, run: RunDir, rows: list[dict[str, Any]], selection: dict[str, Any],
                   limit: int) -> dict[str, Any]:
    """The selection re-ranked by what the bundle delivers: the fastest configs that meet the targets, each served
    by a throwaway bundle of the Go server and measured as the export measures its own (engines.bundle_candidates
    of them; distinct server layouts only). On a GPU the bundle runs in its CUDA image, not here: the engine ranks."""
    why_not = ("engines.bundle_candidates is 0" if limit == 0
               else "the bundle's GPU server runs in its CUDA image, not here" if selection["device"] != "cpu"
               else "Go is not installed here (the export will need it: https://go.dev/dl/)" if not shutil.which("go")
               else None)
    candidates = bundle_candidates(rows, selection, cannot_run=server_cannot_run)
    if not candidates:
        return selection
    image = run.sample_image()
    if why_not is None and image is None:
        why_not = "the run's dataset has no image to send it"
    if why_not is None:
        try:
            with console.status("compiling the bundle's Go server (the first time takes a minute)"):
                build_server()
        except BundleError as err:
            why_not = f"the Go server did not compile here: {str(err).splitlines()[0]}"
    if why_not is not None:
        selection["reasoning"].append(f"Ranked by the engine alone ({why_not}): the bundle's server adds decoding "
                                      "and HTTP per image, which the export measures.")
        return selection
    settings = spec.export.server()  # the bundle the export will write, so its ranking is the export's
    seen, chosen = set(), []
    for row in candidates:
        key = layout(EngineConfig.from_dict(row), settings.concurrent_batches)
        if key not in seen and len(chosen) < limit:
            seen.add(key)
            chosen.append(row)
    measured: list[tuple[dict[str, Any], dict[str, Any] | str]] = []
    for row in chosen:
        with console.status(f"{row['key']}: through the bundle's Go server, {DELIVERY_CLIENTS} clients for "
                            f"{DELIVERY_S:g} s"):
            try:
                served = ServedModel.from_row(run, selection, row)
                got: dict[str, Any] | str = measure_delivery(
                    run.path, served, image, free_port(), seconds=DELIVERY_S, clients=DELIVERY_CLIENTS,
                    settings=settings)
            except (BundleError, NotServable) as err:
                got = str(err).splitlines()[0]
        measured.append((row, got))
        shown = (f"{got['rps']:8.1f} RPS through the bundle" if isinstance(got, dict)
                 else f"[yellow]{escape(got)}[/yellow]")
        console.print(f"  {row['key']:<44} {shown}")
    return rank_by_delivery(selection, measured, DELIVERY_CLIENTS, DELIVERY_S)
