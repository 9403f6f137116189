"""Stage 3: benchmark the best weights on every inference engine and pick the configuration to deploy.

Reads best/best.pt and the intake's clean dataset; writes engines.parquet, selection.json and engines.png.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.markup import escape
from rich.table import Table
from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir
from yoloforge.engines.accuracy import accuracy_metric, has_split
from yoloforge.engines.base import EngineConfig, ModelFacts
from yoloforge.engines.gallery import GALLERY_CONF
from yoloforge.engines.registry import config_space
from yoloforge.engines.runner import BackendPool, LocalPool, run_grid, run_search
from yoloforge.engines.selection import EngineTargets, bundle_candidates, promised, rank_by_delivery, select
from yoloforge.ray_app.console import console
from yoloforge.ray_app.ray_session import ray_session
from yoloforge.ray_app.spec import JobSpec
from yoloforge.ray_app.stages.base import RunState
from yoloforge.ray_app.stages.freshness import Verdict, file_digest
from yoloforge.serving.bundle import server_cannot_run


def resolve_device(device: str) -> str:
    """targets.device → the device engines run on ("auto": the first CUDA GPU if torch sees one)."""
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise YoloforgeError(f"targets.device is {device} but this machine has no CUDA GPU that torch can use",
                                 fix="set targets.device: auto (or cpu), or run on a machine with an NVIDIA GPU")
        return device
    return f"cuda:{device.split(',')[0]}"  # GPU indices "0,1": engines are timed on the first


def engine_targets(spec: JobSpec, task: str) -> EngineTargets:
    t = spec.targets
    return EngineTargets(fps=t.fps, p99_latency_ms=t.p99_latency_ms, max_memory_mb=t.max_memory_mb,
                         max_accuracy_drop=t.max_accuracy_drop, metric=accuracy_metric(task))


@dataclass(frozen=True)
class EnginePlan:
    """What the engines stage measures for a job (engines:): the configurations, whether all of them are
    measured (grid) or the GA picks max_configs of them, each one's timing and scoring, and how many of the
    fastest are also measured through the bundle."""

    configs: list[EngineConfig]
    mode: str  # grid | ga
    max_configs: int
    min_time_s: float
    val_images: int
    bundle_candidates: int


def engine_plan(spec: JobSpec, trained_imgsz: int, device: str) -> EnginePlan:
    e = spec.engines
    configs = config_space(list(e.backends), list(e.precisions), list(e.batch_sizes),
                           list(e.imgsz or [trained_imgsz]), list(e.threads or [None]), device)
    return EnginePlan(configs=configs, mode="grid" if len(configs) <= e.max_configs else "ga",
                      max_configs=e.max_configs, min_time_s=e.min_time_s, val_images=e.val_images,
                      bundle_candidates=e.bundle_candidates)


def stage_inputs(run: RunDir) -> tuple[Path, str]:
    weights = run.best_weights
    if not weights.is_file():
        raise YoloforgeError(f"{weights} does not exist: the search has not produced weights yet",
                             fix=f"run the search first: yoloforge resume {run}")
    clean = run.clean_dir()
    if clean is None:
        raise YoloforgeError(f"{run} has no checked dataset (dataset_report.json)",
                             fix=f"run intake first: yoloforge run {run.job}")
    return weights, str(clean)


def _line(row: dict[str, Any], metric: str) -> str:
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


def stage_engines(spec: JobSpec, task: str, *, address: str | None = None) -> dict[str, Any]:
    """Benchmark, select, write the outputs; returns selection.json's content."""
    run = RunDir(spec.run_dir)
    console.rule("[bold]3 engines[/bold]")
    weights, clean_dir = stage_inputs(run)
    facts = ModelFacts.from_checkpoint(weights, imgsz=spec.search.imgsz)
    device = resolve_device(spec.targets.device)
    plan = engine_plan(spec, facts.imgsz, device)
    configs, mode = plan.configs, plan.mode
    targets = engine_targets(spec, task)
    metric = targets.metric
    models_dir = run.engine_models
    models_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"{len(configs)} configurations on {device}: "
                  + ("measuring all of them" if mode == "grid" else f"the GA measures at most {plan.max_configs}")
                  + f" (timed {plan.min_time_s:g} s each, {metric} on up to {plan.val_images} validation images)")
    worker_kwargs = {"weights": str(weights), "facts": facts.as_dict(), "clean_dir": clean_dir,
                     "models_dir": str(models_dir), "val_limit": plan.val_images, "min_time_s": plan.min_time_s}
    with ray_session(address or spec.resources.address, dashboard=False):
        pool = BackendPool(worker_kwargs)
        try:
            on_row = lambda row: console.print(_line(row, metric))  # noqa: E731
            if mode == "grid":
                rows = run_grid(pool, configs, on_row)
            else:
                rows = run_search(pool, configs, targets, facts.imgsz, plan.max_configs, on_row,
                                  seed=spec.search.seed)
            for row in rows:  # recorded relative to the run directory (RunDir.record), like every produced file
                if row.get("model_file"):
                    row["model_file"] = run.record(row["model_file"])
            selection = select(rows, targets, facts.imgsz, cannot_run=server_cannot_run)
            selection.update(mode=mode, space=len(configs), device=device, task=task,
                             model={**facts.as_dict(), "weights": run.record(weights)}, weights=run.record(weights))
            selection = rank_by_bundle(spec, run, rows, selection, plan.bundle_candidates)
            selection.update(inspect_selection(pool, selection, run, clean_dir, task, metric))
        finally:
            pool.close()
    write_rows(rows, run.engines_table)
    atomic.write_json(run.selection, selection, default=_json_default)
    run.delivered.unlink(missing_ok=True)  # measured for the previous selection
    write_chart(rows, selection, metric, targets.fps, targets.max_accuracy_drop, run.engines_chart)
    print_rows(rows, selection, metric)
    console.print(f"Wrote {run.engines_table}, {run.selection}, {run.engines_chart}")
    return selection


def rank_by_bundle(spec: JobSpec, run: RunDir, rows: list[dict[str, Any]], selection: dict[str, Any],
                   limit: int) -> dict[str, Any]:
    """The selection re-ranked by what the bundle delivers: the fastest configs that meet the targets, each served
    by a throwaway bundle of the Go server and measured as the export measures its own (engines.bundle_candidates
    of them; distinct server layouts only). On a GPU the bundle runs in its CUDA image, not here: the engine ranks."""
    from yoloforge.ray_app.stages.export import DELIVERY_CLIENTS, DELIVERY_S
    from yoloforge.ray_app.stages.preview import free_port, sample_image
    from yoloforge.serving.bundle import BundleError, build_server, layout, measure_delivery
    from yoloforge.serving.served import NotServable, ServedModel

    why_not = ("engines.bundle_candidates is 0" if limit == 0
               else "the bundle's GPU server runs in its CUDA image, not here" if selection["device"] != "cpu"
               else "Go is not installed here (the export will need it: https://go.dev/dl/)" if not shutil.which("go")
               else None)
    candidates = bundle_candidates(rows, selection, cannot_run=server_cannot_run)
    if not candidates:
        return selection
    image = sample_image(run.path)
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


GALLERY_IMAGES = 6


def inspect_selection(pool: BackendPool | LocalPool, selection: dict[str, Any], run: RunDir, clean_dir: str,
                      task: str, metric: str) -> dict[str, Any]:
    """What the chosen config and the search's best weights (the baseline engine) do beyond the timed rows:
    accuracy on the test split, which neither the search nor the selection saw (selection.json 'test'); per-class
    accuracy and the confusion matrix of the best weights on the validation split (accuracy.json); and a gallery
    of test (else validation) images with labels beside the chosen engine's predictions (gallery/)."""
    baseline, chosen = selection.get("baseline"), selection.get("chosen") or selection.get("closest")
    has_test = has_split(clean_dir, task, "test")
    found: dict[str, Any] = {}
    if baseline:
        detail = pool.inspect(EngineConfig.from_dict(baseline), "val", detail=True)
        if isinstance(detail, dict):
            atomic.write_json(run.accuracy, {"engine": baseline["key"], "split": "val", **detail["detail"]})
        else:
            console.print(f"[yellow]per-class accuracy not measured:[/yellow] {detail}", markup=False)
    for role, row in (("baseline", baseline), ("chosen", chosen)):
        if not row or (role == "baseline" and not has_test):
            continue
        gallery = GALLERY_IMAGES if role == "chosen" else 0
        found[role] = pool.inspect(EngineConfig.from_dict(row), "test" if has_test else "val", score=has_test,
                                   gallery=gallery)
    gallery_dir = run.gallery
    shutil.rmtree(gallery_dir, ignore_errors=True)
    if chosen and isinstance(found.get("chosen"), dict) and found["chosen"].get("gallery"):
        gallery_dir.mkdir()
        names = []
        for k, jpeg in enumerate(found["chosen"]["gallery"]):
            (gallery_dir / f"{k:02d}.jpg").write_bytes(jpeg)
            names.append(f"{k:02d}.jpg")
        (gallery_dir / "gallery.json").write_text(json.dumps({"engine": chosen["key"], "split": found["chosen"][
            "split"], "conf": GALLERY_CONF, "images": names}, indent=2))
    if not has_test:
        return {}
    scores = {role: {"key": row["key"], **(found[role]["score"] | {"images": float(found[role]["images"])}
                                           if isinstance(found.get(role), dict) else {"error": found.get(role)})}
              for role, row in (("baseline", baseline), ("chosen", chosen)) if row}
    shown = [f"{'search best' if role == 'baseline' else 'chosen engine'} ({s['key']}) {metric} "
             + (f"{s[metric]:.4f}" if metric in s else f"not scored: {s['error']}") for role, s in scores.items()]
    images = next((int(s["images"]) for s in scores.values() if "images" in s), 0)
    console.print(f"On the test split ({images} images the search never saw): " + "; ".join(shown), markup=False)
    return {"test": scores}


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class EnginesStage:
    name = "engines"

    def enabled(self, state: RunState) -> bool:
        return True

    def inputs(self, state: RunState) -> dict[str, Any]:
        """The weights, the engines settings and the targets; and, since the configs are ranked through the
        bundle, the bundle's server settings and the Go server's source."""
        from yoloforge.serving.bundle import gateway_digest

        spec = state.spec
        found = {"engines": spec.engines.model_dump(mode="json"), "targets": spec.targets.model_dump(mode="json"),
                 "weights": file_digest(state.run.best_weights)}
        if spec.engines.bundle_candidates > 0:
            # what the delivery measurement depends on; the port, the cache (off while measuring) and the image
            # build do not change a ranking, so changing them does not measure the configs again
            ranking = spec.export.model_dump(include={"max_batch", "max_wait_ms", "max_queue", "concurrent_batches"})
            found |= {"export": ranking, "server": gateway_digest()}
        return found

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        if verdict != "current" or (selection := state.run.read_selection()) is None:
            return False
        console.print(f"engines: selection.json is current (same weights, engines, targets, bundle settings and "
                      f"server source); kept (re-run with "
                      f"`yoloforge bench {state.run}` or --from engines)")
        state.selection = selection
        return True

    def run(self, state: RunState, verdict: Verdict) -> bool:
        state.selection = stage_engines(state.spec, state.task)
        finish_engines(state.run, state.selection)
        return True


def finish_engines(run: RunDir, selection: dict[str, Any]) -> None:
    console.rule()
    chosen = selection.get("chosen")
    if chosen:
        promise, basis = promised(selection)
        console.print(f"[green]Engine chosen:[/green] {chosen['key']}, {promise:.1f} {basis} "
                      f"(see {run.selection})")
    else:
        console.print("[yellow]No engine configuration meets every target[/yellow]; see the reasoning above and "
                      f"{run.selection}")


STAGE = EnginesStage()
