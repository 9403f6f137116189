"""Ranking the configurations that meet every target by what the bundle's Go server delivers with each.

The engine alone is timed without decoding, letterboxing or HTTP; the bundle's server adds those per image, more
for some engines than others, so configs close in engine speed can swap places once served. Pure functions over
selection.json and result rows, as engines/selection.py is.
"""

from __future__ import annotations

from typing import Any

from yoloforge.engines.selection import CannotRun, EngineTargets, violation

BUNDLE_WITHIN = 0.7  # configs slower than this share of the fastest one are not measured through the bundle
BUNDLE_MARGIN = 0.05  # a short delivery measurement's noise: another config must deliver this much more to win


def server_cost_factor(served: dict[str, Any], row: dict[str, Any]) -> float | None:
    """The bundle's server CPU time per answered request against the engine's own per image for the same
    configuration (engines.parquet's cpu_ms_per_image: same threads, batch and copies): 1.00 is a server that costs
    nothing beside its engine. None where either was not measured."""
    server, engine = served.get("cpu_ms_per_request"), row.get("cpu_ms_per_image")
    return float(server) / float(engine) if server and engine else None


def bundle_candidates(rows: list[dict[str, Any]], selection: dict[str, Any], *,
                      cannot_run: CannotRun) -> list[dict[str, Any]]:
    """The configs worth measuring through the bundle, the engine's choice first: those the Go server runs that
    meet every target, within BUNDLE_WITHIN of the fastest of them in engine throughput, fastest first."""
    chosen = selection.get("chosen")
    if chosen is None or cannot_run(chosen) is not None:
        return []
    targets = EngineTargets(**selection["targets"])
    base_acc = (selection.get("baseline") or {}).get(targets.metric)
    feasible = [r for r in rows if r.get("status") == "ok" and cannot_run(r) is None
                and violation(r, targets, base_acc) == 0]
    floor = BUNDLE_WITHIN * max(r["throughput"] for r in feasible)
    others = sorted((r for r in feasible if r["key"] != chosen["key"] and r["throughput"] >= floor),
                    key=lambda r: -r["throughput"])
    return [chosen, *others]


def rank_by_delivery(selection: dict[str, Any], measured: list[tuple[dict[str, Any], dict[str, Any] | str]],
                     clients: int, seconds: float) -> dict[str, Any]:
    """selection.json once candidates were measured through the bundle: measured pairs each candidate row with
    what its bundle delivered (bench_server's method: uncached RPS under load) or why its bundle did not run. The
    engine's choice stays unless another config delivers BUNDLE_MARGIN more; one whose bundle did not run is out.
    The promise (promised()) becomes the chosen config's delivered RPS."""
    result = {**selection, "reasoning": list(selection["reasoning"]), "advice": list(selection["advice"])}
    ran = [(row, got) for row, got in measured if isinstance(got, dict)]
    listing = "; ".join(f"{row['key']} {got['rps']:.1f} RPS" if isinstance(got, dict) else f"{row['key']} did not run"
                        for row, got in measured)
    result["bundle_ranking"] = {"clients": clients, "seconds": seconds, "measured": [
        {"key": row["key"], "throughput": row["throughput"],
         **({"rps": got["rps"], "p99_ms": got["p99_ms"], "stages_ms": got.get("stages_ms", {}),
             "cpu_ms_per_request": got.get("cpu_ms_per_request"), "cost_factor": server_cost_factor(got, row)}
            if isinstance(got, dict) else {"error": got})} for row, got in measured]}
    for row, got in measured:
        if isinstance(got, str):
            result["reasoning"].append(f"The bundle of {row['key']} did not run here: {got}")
    if not ran:
        result["reasoning"].append("No candidate's bundle ran, so configurations are ranked by the engine alone.")
        return result
    first_row, first = measured[0]
    best_row, best = max(ran, key=lambda pair: pair[1]["rps"])
    chosen_row, chosen = (first_row, first) if isinstance(first, dict) else (best_row, best)
    if best["rps"] > chosen["rps"] * (1 + BUNDLE_MARGIN):
        chosen_row, chosen = best_row, best
    result["chosen"] = chosen_row
    result["promised_rps"] = chosen["rps"]
    baseline = result.get("baseline")
    if baseline and result.get("speedup_vs_baseline") is not None:
        result["speedup_vs_baseline"] = chosen_row["throughput"] / baseline["throughput"]
    result["reasoning"].append(
        f"Ranked by what the bundle delivers ({len(measured)} candidate{'s' if len(measured) != 1 else ''} through "
        f"the Go server, {clients} clients "
        f"for {seconds:g} s each, uncached): {listing}. "
        + (f"{chosen_row['key']} delivers the most" if chosen_row["key"] != first_row["key"]
           else f"{chosen_row['key']} stays chosen")
        + f"; the promise is its {chosen['rps']:.1f} RPS through the bundle ({chosen_row['throughput']:.1f} img/s "
          "for the engine alone).")
    fps = result["targets"].get("fps")
    if fps and chosen["rps"] < fps:
        result["advice"].append(f"through the bundle the chosen config delivers {chosen['rps']:.1f} RPS, below the "
                                f"{fps:g} FPS target: the server's decoding and HTTP cost "
                                f"{_overhead(chosen):.1f} ms per image beside the engine; a GPU or a smaller input "
                                "size would help")
    return result


def _overhead(delivered: dict[str, Any]) -> float:
    stages = delivered.get("stages_ms", {})
    return float(sum(stages.get(k, 0.0) for k in ("decode", "preprocess", "postprocess")))
