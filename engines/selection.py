"""Choosing the inference config: the fastest one that meets every target, or an honest account of what misses.

Pure functions over result rows (dicts as engines.parquet holds them), so the same rules serve the grid, the
GA's constraint violation and the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EngineTargets:
    fps: float | None = None
    p99_latency_ms: float | None = None
    max_memory_mb: float | None = None
    max_accuracy_drop: float = 0.01
    metric: str = "mAP50-95"  # top1 for classify


def memory_mb(row: dict[str, Any]) -> float | None:
    """GPU configs are limited by device memory, CPU ones by the process's resident memory."""
    if str(row.get("device", "cpu")).startswith("cuda") and row.get("cuda_peak_mb") is not None:
        return float(row["cuda_peak_mb"])
    value = row.get("peak_rss_mb")
    return None if value is None else float(value)


def baseline_row(rows: list[dict[str, Any]], trained_imgsz: int) -> dict[str, Any] | None:
    """PyTorch FP32 at the trained input size (batch 1 preferred): the accuracy every engine is held to."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("imgsz") == trained_imgsz and r["precision"] == "fp32"]
    for candidates in ([r for r in ok if r["backend"] == "pytorch"], ok):
        if candidates:
            return min(candidates, key=lambda r: (r["batch"], r.get("options") not in (None, "{}")))
    return None


def shortfalls(row: dict[str, Any], targets: EngineTargets, baseline_accuracy: float | None) -> dict[str, float]:
    """By how much (relative to the target) the row misses each target; 0 where met. inf for a row that failed."""
    if row.get("status") != "ok":
        return {"runs": math.inf}
    missed: dict[str, float] = {}
    if targets.fps is not None:
        missed["fps"] = max(0.0, (targets.fps - row["throughput"]) / targets.fps)
    if targets.p99_latency_ms is not None:
        missed["p99_latency_ms"] = max(0.0, (row["p99_ms"] - targets.p99_latency_ms) / targets.p99_latency_ms)
    memory = memory_mb(row)
    if targets.max_memory_mb is not None and memory is not None:
        missed["memory"] = max(0.0, (memory - targets.max_memory_mb) / targets.max_memory_mb)
    if baseline_accuracy is not None:
        drop = accuracy_drop(row, targets.metric, baseline_accuracy)
        missed["accuracy"] = max(0.0, drop - targets.max_accuracy_drop) / max(baseline_accuracy, 1e-6)
    return missed


def accuracy_drop(row: dict[str, Any], metric: str, baseline_accuracy: float) -> float:
    """What the row loses against the baseline on the validation images; for an int8 model whose recipe was chosen
    on half of them, the larger of that and its drop against fp32 on the half no choice saw, so a recipe never
    passes on the images it was picked on."""
    drop = baseline_accuracy - (row.get(metric) or 0.0)
    heldout = row.get("int8_heldout_drop")
    if heldout is not None and math.isfinite(heldout):
        drop = max(drop, float(heldout))
    return drop


def misses(row: dict[str, Any], targets: EngineTargets, baseline_accuracy: float | None) -> list[str]:
    """Each target an ok row misses, in words with the measured value (empty: it meets every target)."""
    found = shortfalls(row, targets, baseline_accuracy)
    said = []
    if found.get("fps"):
        said.append(f"{row['throughput']:.1f} img/s, below the {targets.fps:g} img/s target")
    if found.get("p99_latency_ms"):
        said.append(f"p99 {row['p99_ms']:.1f} ms, above the {targets.p99_latency_ms:g} ms target")
    if found.get("memory"):
        said.append(f"{memory_mb(row):.1f} MB, above the {targets.max_memory_mb:g} MB target")
    if found.get("accuracy") and baseline_accuracy is not None:
        drop = baseline_accuracy - (row.get(targets.metric) or 0.0)
        heldout = row.get("int8_heldout_drop")
        if heldout is not None and math.isfinite(heldout) and heldout > drop:
            said.append(f"loses {heldout:.3f} {targets.metric} against fp32 on the held-out validation images "
                        f"({row.get('int8_recipe_text') or 'its int8 recipe'}), over the "
                        f"{targets.max_accuracy_drop:g} allowed (targets.max_accuracy_drop)")
        else:
            said.append(f"loses {drop:.3f} {targets.metric} against the baseline, over the "
                        f"{targets.max_accuracy_drop:g} allowed (targets.max_accuracy_drop)")
    return said


def verdicts(rows: list[dict[str, Any]], selection: dict[str, Any], *, cannot_run: CannotRun) -> dict[str, str]:
    """Why each measured configuration was chosen or passed over, in words: what the report's engines table says."""
    targets = EngineTargets(**selection.get("targets", {}))
    baseline = selection.get("baseline") or {}
    base_acc = baseline.get(targets.metric)
    chosen = (selection.get("chosen") or {}).get("key")
    closest = (selection.get("closest") or {}).get("key")
    ranked = {m["key"]: m for m in (selection.get("bundle_ranking") or {}).get("measured", []) if "key" in m}
    out = {}
    for row in rows:
        key = row["key"]
        if row.get("status") != "ok":
            out[key] = f"{row.get('status')}: {row.get('reason') or 'no reason recorded'}"
            continue
        missed = misses(row, targets, base_acc)
        through = f"; {ranked[key]['rps']:.1f} RPS through the bundle" if "rps" in ranked.get(key, {}) else ""
        if key == chosen:
            out[key] = ("chosen: the fastest that meets every target"
                        + (" through the bundle" if ranked else "") + through)
        elif key == closest:
            out[key] = "the closest to the targets (none meets them all): " + "; ".join(missed)
        elif missed:
            out[key] = "not chosen: " + "; ".join(missed)
        elif cannot_run(row):
            out[key] = f"not chosen: meets every target, but {cannot_run(row)}"
        elif key in ranked and "error" in ranked[key]:
            out[key] = f"not chosen: meets every target, but its bundle did not run here: {ranked[key]['error']}"
        else:
            out[key] = "not chosen: meets every target, slower than the chosen" + (through and " (" + through[2:] + ")")
    return out


def violation(row: dict[str, Any], targets: EngineTargets, baseline_accuracy: float | None) -> float:
    return float(sum(shortfalls(row, targets, baseline_accuracy).values()))


def _describe(row: dict[str, Any], metric: str) -> str:
    return (f"{row['backend']} {row['precision']} batch {row['batch']} @{row['imgsz']}px"
            f"{' threads ' + str(int(row['threads'])) if row.get('threads') else ''}"
            f"{'' if row.get('options') in (None, '{}') else ' ' + str(row['options'])}: "
            f"{row['throughput']:.1f} img/s, p99 {row['p99_ms']:.1f} ms, {metric} {row.get(metric) or 0:.4f}")


def noise(row: dict[str, Any]) -> float:
    """The row's throughput noise in img/s (0 for rows measured before it was recorded)."""
    value = row.get("throughput_noise")
    return 0.0 if value is None or not math.isfinite(value) else float(value)


# Why the server a configuration is deployed on cannot run it as measured (None: it can). serving/ decides
# (serving.bundle.server_cannot_run) and hands it to the selection, which only ranks.
CannotRun = Callable[[dict[str, Any]], str | None]


def speed_ties(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """The rows as fast as the fastest within their timing noise (intervals that overlap), most accurate first,
    then least memory: a tie in speed goes to accuracy."""
    if not rows:
        return []
    fastest = max(rows, key=lambda r: r["throughput"])
    floor = fastest["throughput"] - noise(fastest)
    ties = [r for r in rows if r["throughput"] + noise(r) >= floor]
    return sorted(ties, key=lambda r: (-(r.get(metric) or 0.0), memory_mb(r) or 0.0, -r["throughput"]))


def select(rows: list[dict[str, Any]], targets: EngineTargets, trained_imgsz: int, *,
           cannot_run: CannotRun) -> dict[str, Any]:
    """selection.json: the chosen config (or none), the baseline, and the reasoning in plain sentences."""
    baseline = baseline_row(rows, trained_imgsz)
    base_acc = baseline.get(targets.metric) if baseline else None
    ok = [r for r in rows if r.get("status") == "ok"]
    feasible = [r for r in ok if violation(r, targets, base_acc) == 0]
    reasoning = [f"{len(rows)} configurations measured: {len(ok)} ran, "
                 f"{sum(r.get('status') == 'unavailable' for r in rows)} unavailable here, "
                 f"{sum(r.get('status') == 'failed' for r in rows)} failed."]
    if baseline:
        reasoning.append(f"Baseline (PyTorch FP32 at the trained {trained_imgsz}px): "
                         f"{_describe(baseline, targets.metric)}.")
    else:
        reasoning.append("No PyTorch FP32 baseline ran, so accuracy drops could not be checked.")
    wanted = [f"≥ {targets.fps:g} img/s" if targets.fps else None,
              f"p99 ≤ {targets.p99_latency_ms:g} ms" if targets.p99_latency_ms else None,
              f"memory ≤ {targets.max_memory_mb:g} MB" if targets.max_memory_mb else None,
              f"{targets.metric} drop ≤ {targets.max_accuracy_drop:g}"]
    reasoning.append("Targets: " + ", ".join(w for w in wanted if w) + ".")
    # ranked by what the bundle can deliver: a config the Go server cannot run is chosen only when nothing it can
    # run meets the targets
    deliverable = [r for r in feasible if cannot_run(r) is None]
    ties = speed_ties(deliverable or feasible, targets.metric)
    chosen = ties[0] if ties else None
    faster = [r for r in feasible if cannot_run(r) is not None and chosen is not None
              and r["throughput"] - noise(r) > chosen["throughput"] + noise(chosen)]
    if deliverable and faster:
        best = max(faster, key=lambda r: r["throughput"])
        reasoning.append(f"{best['key']} is faster ({best['throughput']:.1f} img/s), but {cannot_run(best)}: "
                         "configurations are ranked by what the bundle delivers.")
    result: dict[str, Any] = {
        "met": chosen is not None, "chosen": chosen, "baseline": baseline,
        "targets": targets.__dict__, "feasible": len(feasible), "measured": len(rows), "reasoning": reasoning,
        "advice": [], "closest": None,
        "deployable": chosen is not None and cannot_run(chosen) is None,
    }
    base_speed = baseline["throughput"] if baseline else None
    if chosen is not None:
        speedup = chosen["throughput"] / base_speed if base_speed else None
        result["speedup_vs_baseline"] = speedup
        reasoning.append(f"Chosen, the fastest of {len(feasible)} that meet every target: "
                         f"{_describe(chosen, targets.metric)}"
                         + (f" ({speedup:.2f}x the baseline's throughput)." if speedup else "."))
        if len(ties) > 1:
            reasoning.append(f"{len(ties)} configurations are as fast within the timing noise "
                             f"(±{noise(ties[0]):.1f} img/s): the most accurate, then the least memory, was chosen "
                             f"over {', '.join(r['key'] for r in ties[1:4])}.")
        return result
    if not ok:
        reasoning.append("No configuration ran; see the reasons in engines.parquet.")
        result["advice"].append("install the backends' libraries (onnxruntime, openvino) or check the errors above")
        return result
    closest = min(ok, key=lambda r: (violation(r, targets, base_acc), -r["throughput"]))
    result["closest"] = closest
    missed = {k: v for k, v in shortfalls(closest, targets, base_acc).items() if v > 0}
    reasoning.append(f"Nothing meets every target. Closest: {_describe(closest, targets.metric)}; it misses "
                     + ", ".join(f"{k} by {v:.0%}" for k, v in missed.items()) + ".")
    accurate = [r for r in ok if shortfalls(r, targets, base_acc).get("accuracy", 0) == 0]
    if targets.fps and accurate:
        fastest = max(accurate, key=lambda r: r["throughput"])
        need = targets.fps / fastest["throughput"]
        if need > 1:
            result["advice"].append(
                f"the fastest accurate configuration does {fastest['throughput']:.1f} img/s: {need:.1f}x short of "
                f"{targets.fps:g}. Options: a GPU (targets.device: cuda), a smaller input size (engines.imgsz, "
                f"costs accuracy), a smaller model, or a lower FPS target")
    if "accuracy" in missed:
        result["advice"].append(f"faster configurations lose more than {targets.max_accuracy_drop:g} {targets.metric}; "
                                f"raise targets.max_accuracy_drop if that loss is acceptable")
    if "memory" in missed:
        result["advice"].append("memory is over the limit: use batch 1, fewer threads, or raise targets.max_memory_mb")
    if "p99_latency_ms" in missed:
        result["advice"].append("p99 latency is over the limit: use batch 1 or a faster engine/device")
    return result


def int8_summary(rows: list[dict[str, Any]], selection: Mapping[str, Any], *,
                 cannot_run: CannotRun) -> dict[str, Any] | None:
    """What int8 came to in this selection (selection.json's "int8"; None when no int8 configuration ran): each
    backend's searched recipe and its held-out drop, and the verdict: int8 chosen, or why fp32 held."""
    ran = [r for r in rows if r.get("status") == "ok" and r.get("precision") == "int8"]
    if not ran:
        return None
    targets = EngineTargets(**selection.get("targets", {}))
    base_acc = (selection.get("baseline") or {}).get(targets.metric)
    recipes = {}
    for r in ran:
        if r.get("int8_recipe_text") and (r["backend"], r["imgsz"]) not in recipes:
            recipes[(r["backend"], r["imgsz"])] = (f"{r['backend']} @{r['imgsz']}px {r['int8_recipe_text']} "
                                                   f"({int(r.get('int8_tried') or 0)} recipes tried in "
                                                   f"{float(r.get('int8_search_s') or 0):.0f} s)")
    chosen = Selection(dict(selection)).served
    fastest = max(ran, key=lambda r: r["throughput"])
    if chosen is not None and chosen.get("precision") == "int8":
        verdict = f"int8 chosen: {chosen['key']}" + (f", {chosen['int8_recipe_text']}"
                                                     if chosen.get("int8_recipe_text") else "")
    elif missed := misses(fastest, targets, base_acc):
        verdict = f"fp32 held: the fastest int8, {fastest['key']}, " + "; ".join(missed)
    elif chosen is not None and fastest["throughput"] + noise(fastest) <= chosen["throughput"] - noise(chosen):
        verdict = (f"fp32 held: the fastest int8, {fastest['key']} ({fastest['throughput']:.1f} img/s), meets "
                   f"the targets but is slower than {chosen['key']} ({chosen['throughput']:.1f} img/s)")
    else:  # as fast within the noise, or it lost through the bundle, or the server cannot run it
        verdict = f"fp32 held: the fastest int8, {fastest['key']}, " + verdicts(
            [fastest], dict(selection), cannot_run=cannot_run)[fastest["key"]]
    return {"recipes": list(recipes.values()), "verdict": verdict}


THROUGH_BUNDLE, ENGINE_ALONE = "RPS through the bundle", "img/s for the engine alone"


def promised(selection: Mapping[str, Any] | None) -> tuple[float | None, str]:
    """Selection.promise() of a selection.json's content (empty when there is none)."""
    return Selection(dict(selection or {})).promise()


@dataclass(frozen=True)
class Selection:
    """selection.json as the rest of yoloforge reads it: the one owner of which configuration a run serves (the
    chosen one; when none meets every target, the closest) and of what the run promises."""

    record: dict[str, Any]  # selection.json's content, as select() and rank_by_delivery() wrote it

    @classmethod
    def of(cls, record: Mapping[str, Any] | None) -> Selection | None:
        return None if record is None else cls(dict(record))

    @property
    def chosen(self) -> dict[str, Any] | None:
        """The fastest configuration that meets every target; None when none does."""
        return self.record.get("chosen")

    @property
    def closest(self) -> dict[str, Any] | None:
        """When none meets every target: the one that misses them least."""
        return self.record.get("closest")

    @property
    def served(self) -> dict[str, Any] | None:
        """The configuration the run serves (preview, bundle, streams): the chosen one, else the closest."""
        return self.chosen or self.closest

    @property
    def met(self) -> bool:
        return self.chosen is not None

    @property
    def baseline(self) -> dict[str, Any] | None:
        return self.record.get("baseline")

    @property
    def targets(self) -> EngineTargets:
        return EngineTargets(**self.record.get("targets", {}))

    @property
    def reasoning(self) -> list[str]:
        return list(self.record.get("reasoning", []))

    @property
    def advice(self) -> list[str]:
        return list(self.record.get("advice", []))

    def promise(self) -> tuple[float | None, str]:
        """What the run promises the user, and in what (THROUGH_BUNDLE or ENGINE_ALONE): the served config's RPS
        through the bundle where the engines stage measured it, else its img/s for the engine alone."""
        if self.record.get("promised_rps") is not None:
            return float(self.record["promised_rps"]), THROUGH_BUNDLE
        value = (self.served or {}).get("throughput")
        return (None if value is None else float(value)), ENGINE_ALONE
