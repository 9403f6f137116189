"""What a run achieved against its targets: one list of rows for the console summary and for report.html."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yoloforge.engines.accuracy import accuracy_metric
from yoloforge.engines.selection import THROUGH_BUNDLE, Selection, memory_mb


@dataclass(frozen=True)
class TargetRow:
    name: str
    target: str  # "-" when the job sets none
    achieved: str
    met: bool | None  # None: nothing to meet, or nothing measured


def target_rows(targets: Mapping[str, Any], best: Mapping[str, Any] | None,
                selection: Selection | None, delivered: Mapping[str, Any] | None = None) -> list[TargetRow]:
    """targets is the job's `targets:` (metrics, fps, p99_latency_ms, max_memory_mb); best the best trial's
    metrics; selection the engines stage's (its served config is judged); delivered what the bundle's server
    delivered at export (delivered.json)."""
    rows = []
    for metric, floor in (targets.get("metrics") or {}).items():
        value = (best or {}).get(metric)
        rows.append(TargetRow(metric, f">= {floor:g}", "-" if value is None else f"{value:.4f}",
                              None if value is None else value >= floor))
    rows += _test_rows(targets, selection)
    chosen = selection.served if selection else None
    if selection is None or not chosen:
        return rows
    fps, p99, memory = targets.get("fps"), targets.get("p99_latency_ms"), targets.get("max_memory_mb")
    promise, basis = selection.promise()  # ranked through the bundle: what its server delivers
    achieved = (f"{chosen['throughput']:.1f} img/s" if basis != THROUGH_BUNDLE
                else f"{promise:.1f} {basis} ({chosen['throughput']:.1f} img/s engine alone)")
    rows.append(TargetRow("throughput", f">= {fps:g} img/s" if fps else "-", achieved,
                          None if not fps or promise is None else promise >= fps))
    rows.append(TargetRow("p99 latency", f"<= {p99:g} ms" if p99 else "-", f"{chosen['p99_ms']:.1f} ms",
                          None if not p99 else chosen["p99_ms"] <= p99))
    edge = selection.record.get("edge")
    if edge:  # the board it will run on: estimated, never measured here, and the row says so
        rows.append(TargetRow(f"throughput {edge['label']}", f">= {fps:g} img/s" if fps else "-",
                              f"{edge['fps']:.1f} img/s ({edge['latency_ms']:.1f} ms, {edge['backend']} "
                              f"{edge['precision']}, {edge['imgsz']} px)", edge.get("meets_fps")))
    used = memory_mb(chosen)
    if used is not None:
        rows.append(TargetRow("memory", f"<= {memory:g} MB" if memory else "-", f"{used:.0f} MB",
                              None if not memory else used <= memory))
    if delivered:
        share = f" ({delivered['ratio']:.2f} of the promise)" if delivered.get("ratio") else ""
        rows.append(TargetRow("delivered by the bundle", f">= {fps:g} RPS" if fps else "-",
                              f"{delivered['rps']:.1f} RPS at {delivered['clients']} clients{share}",
                              None if not fps else delivered["rps"] >= fps))
        if delivered.get("cost_factor"):
            stages = delivered.get("stages_ms") or {}
            spent = ", ".join(f"{k} {stages[k]:.1f}" for k in ("decode", "preprocess", "postprocess") if k in stages)
            rows.append(TargetRow("server cost (CPU per request / engine's per image)", "-",
                                  f"{delivered['cost_factor']:.2f}x ({delivered['cpu_ms_per_request']:.1f} against "
                                  f"{delivered['engine_cpu_ms_per_image']:.1f} ms; per image {spent} ms)", None))
    return rows


def _test_rows(targets: Mapping[str, Any], selection: Selection | None) -> list[TargetRow]:
    """The chosen engine's accuracy on the test split, which neither the search nor the selection saw."""
    record = selection.record if selection else {}
    test = record.get("test") or {}
    scored = next((test[r] for r in ("chosen", "baseline") if r in test and "error" not in test[r]), None)
    if scored is None:
        return []
    floors = dict(targets.get("metrics") or {}) or {accuracy_metric(record.get("task", "detect")): None}
    return [TargetRow(f"{metric} on test", "-" if floor is None else f">= {floor:g}", f"{scored[metric]:.4f}",
                      None if floor is None else scored[metric] >= floor)
            for metric, floor in floors.items() if metric in scored]


def engine_verdict(selection: Selection | None) -> tuple[str, bool] | None:
    """The engine the bundle serves and whether it met every engine target (False: the closest one)."""
    served = selection.served if selection else None
    return (served["key"], selection.met) if selection and served else None


def meets_targets(metrics: dict[str, Any], minimums: dict[str, float]) -> bool:
    """Every minimum met by the metrics (a missing metric misses its target)."""
    return all((m := metrics.get(k)) is not None and m >= v for k, v in minimums.items())

