"""One search trial: Ultralytics train + val with a genome's hyperparameters, reported to Ray Tune.

Per-epoch metrics go to Tune from an Ultralytics callback (so schedulers and the dashboard see progress); the
last report carries the final metrics of best.pt, the fitness and the compute cost, with best.pt, Ultralytics'
arguments and its per-epoch results.csv as Tune's checkpoint of the trial (kept in the run directory's search/
folder, where Tune stores the experiment). Ultralytics trains in a temporary folder, removed when the trial
ends: every later trial of a Tune actor (reuse_actors) would otherwise write where Ray's reset points it, a
folder the run never sees, and each trial's epoch checkpoints would pile up there. A trial
that raises (NaN loss that Ultralytics cannot recover from, out of memory, ...) is recorded by Tune with its
error and the search goes on.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.engines.edge import EDGE_DEVICES, estimate_ms
from yoloforge.engines.harness import PeakRss
from yoloforge.ga.fitness import weighted_fitness

# Ultralytics' metric keys -> yoloforge's metric names
METRIC_KEYS: dict[str, dict[str, str]] = {
    "detect": {"metrics/mAP50(B)": "mAP50", "metrics/mAP50-95(B)": "mAP50-95",
               "metrics/precision(B)": "precision", "metrics/recall(B)": "recall"},
    "segment": {"metrics/mAP50(B)": "mAP50", "metrics/mAP50-95(B)": "mAP50-95",
                "metrics/precision(B)": "precision", "metrics/recall(B)": "recall",
                "metrics/mAP50(M)": "mask_mAP50", "metrics/mAP50-95(M)": "mask_mAP50-95"},
    "classify": {"metrics/accuracy_top1": "top1", "metrics/accuracy_top5": "top5"},
}
COST_KEYS = ("params_m", "gflops", "latency_ms", "memory_mb", "train_time_s")
CHECKPOINT_WEIGHTS = "best.pt"  # the weights' name inside a trial's Tune checkpoint
TRAIN_ARGS = "args.yaml"  # Ultralytics' record of a training's arguments, beside the weights in the checkpoint
EPOCH_RESULTS = "results.csv"  # Ultralytics' per-epoch losses and metrics, beside them too


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a search shares (handed to the trainable with tune.with_parameters)."""

    model: str
    data: str
    task: str
    epochs: int
    imgsz: int
    batch: int
    seed: int = 0
    fitness_weights: dict[str, float] = field(default_factory=dict)
    penalties: dict[str, float] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # genes fixed in job.yaml
    # CPU trials: input size -> the architecture's latency, measured once before any trial trains (shared_latency_ms)
    latency_ms: dict[int, float] = field(default_factory=dict)
    # targets.edge_device: the latency cost is the device's, estimated from the trial's GFLOPs (engines/edge.py)
    edge_device: str | None = None


def training_args() -> frozenset[str]:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return frozenset(DEFAULT_CFG_DICT)


def pick_device(gpu_ids: list[Any]) -> str:
    """The device Ray gave this trial: CUDA if it assigned a GPU and one is usable, else CPU.

    Ray sets CUDA_VISIBLE_DEVICES to the trial's GPUs, so the first one is always index 0 inside the trial;
    fractional trials share that GPU. Logical GPUs on a machine without CUDA fall back to the CPU.
    """
    import torch

    return "0" if gpu_ids and torch.cuda.is_available() else "cpu"


def named_metrics(task: str, raw: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, name in METRIC_KEYS[task].items():
        value = raw.get(key)
        out[name] = float(value) if value is not None else math.nan
    return out


def trial_fitness(metrics: dict[str, float], ctx: TrialContext, costs: dict[str, float] | None = None) -> float:
    arrays = {k: np.array([v]) for k, v in metrics.items()}
    cost_arrays = {k: np.array([v]) for k, v in (costs or {}).items()}
    return float(weighted_fitness(arrays, ctx.fitness_weights, cost_arrays, ctx.penalties)[0])


def measure_latency_ms(net: Any, imgsz: int, device: str, runs: int = 10) -> float:
    """Median single-image forward time of the trained network at the target size (eager PyTorch)."""
    import torch

    dev = torch.device("cuda:0" if device != "cpu" else "cpu")
    net = net.to(dev).float().eval()
    x = torch.zeros(1, 3, imgsz, imgsz, device=dev)
    times = []
    with torch.inference_mode():
        for i in range(runs + 2):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            net(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:  # two warm-up runs
                times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def shared_latency_ms(model: str, task: str, sizes: list[int]) -> dict[int, float]:
    """The architecture's single-image CPU latency at each input size, measured once and alone.

    Trials of one architecture and size differ in weights only, which do not change the time; measured inside
    each trial, beside other trials training, the same network read anywhere from 51 to 83 ms, and the Pareto
    front and the compute penalty were drawn on that noise."""
    from ultralytics import YOLO

    net = YOLO(model, task=task).model
    return {size: measure_latency_ms(net, size, "cpu", runs=20) for size in sorted(set(sizes))}


def peak_memory_mb(device: str, rss_mb: float) -> float:
    """This trial's peak: its process's resident memory while it trained (sampled: Tune reuses a trial's process
    for the next, so the process's lifetime peak would be an earlier trial's), or the GPU's allocated peak."""
    if device != "cpu":
        import torch

        return max(rss_mb, torch.cuda.max_memory_allocated() / 2**20)
    return rss_mb


def _drop_ultralytics_raytune(trainer: Any) -> None:
    """Ultralytics adds its own Ray Tune reporter; ours reports named metrics and fitness instead."""
    for event, funcs in trainer.callbacks.items():
        trainer.callbacks[event] = [f for f in funcs if "raytune" not in getattr(f, "__module__", "")]


def release_freed_memory() -> None:
    """Hand what an earlier trial of this process freed back to the system, so this trial's memory peak starts
    from the process's baseline (glibc keeps freed heap mapped until asked; elsewhere nothing to do)."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # the C library this process runs: musl, macOS have none
        ctypes.CDLL(None).malloc_trim(0)


def train_trial(config: dict[str, Any], ctx: TrialContext) -> None:
    """The Tune function trainable: run_trial on the device Ray gave this trial, reporting to Tune."""
    import ray
    from ray import tune

    def report(result: dict[str, Any]) -> None:
        if not result.get("final"):
            tune.report(result)
            return
        # the weights go to Tune as the trial's checkpoint: Tune keeps it in the experiment's storage (the run
        # directory, from any node), while the folder the trial trained in is removed when it ends
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy2(result["best_pt"], Path(folder) / CHECKPOINT_WEIGHTS)
            for kept in (Path(result["train_args"]), Path(result["train_args"]).with_name(EPOCH_RESULTS)):
                if kept.is_file():  # what Ultralytics trained with (for best/hyp.yaml), and each epoch's figures
                    shutil.copy2(kept, Path(folder) / kept.name)
            tune.report({**result, "best_pt": CHECKPOINT_WEIGHTS, "train_args": TRAIN_ARGS},
                        checkpoint=tune.Checkpoint.from_directory(folder))

    with tempfile.TemporaryDirectory(prefix="yoloforge-trial-") as work:
        run_trial(config, ctx, pick_device(ray.get_gpu_ids()), Path(work), report)


def run_trial(config: dict[str, Any], ctx: TrialContext, device: str, trial_dir: Path,
              report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """One trial without Ray: train, validate, measure the costs; report() gets each epoch and the final result,
    which is also returned. scripts/bench_packing.py runs it in plain processes sharing one GPU."""
    import torch
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    allowed = training_args()
    hyp = {k: v for k, v in {**ctx.fixed, **config}.items() if k in allowed}
    imgsz = int(hyp.pop("imgsz", ctx.imgsz))
    batch = int(hyp.pop("batch", ctx.batch))

    def report_epoch(trainer: Any) -> None:
        done = trainer.epoch + 1
        if done > ctx.epochs:  # Ultralytics' validation of best.pt after the last epoch: the final report's
            return
        metrics = named_metrics(ctx.task, trainer.metrics)
        eta_s = (time.time() - start) / done * (ctx.epochs - done)  # Tune, its dashboard and TensorBoard show it
        report({**metrics, "fitness": trial_fitness(metrics, ctx), "epoch": done, "epochs": ctx.epochs,
                "eta_s": eta_s})

    # the same initial weights in every trial (a model built from .yaml is random): trials then differ by their
    # hyperparameters only, not by luck of the draw, which on small data can double or halve the fitness
    torch.manual_seed(ctx.seed)
    model = YOLO(ctx.model, task=ctx.task)
    model.add_callback("on_pretrain_routine_start", _drop_ultralytics_raytune)
    start = time.time()
    model.add_callback("on_fit_epoch_end", report_epoch)
    release_freed_memory()
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    with PeakRss(interval_s=0.05) as rss:
        model.train(data=ctx.data, epochs=ctx.epochs, imgsz=imgsz, batch=batch, device=device, workers=0,
                    plots=False, amp=device != "cpu", project=str(trial_dir), name="train", exist_ok=True,
                    verbose=False, seed=ctx.seed, val=True, **hyp)
    train_time = time.time() - start
    trainer = model.trainer
    metrics = named_metrics(ctx.task, trainer.metrics)
    best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
    net = YOLO(str(best)).model
    gflops = float(get_flops(net, imgsz) or 0.0)
    costs = {
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "gflops": gflops,
        "latency_ms": estimate_ms(EDGE_DEVICES[ctx.edge_device], gflops) if ctx.edge_device
        else ctx.latency_ms[imgsz] if device == "cpu" and imgsz in ctx.latency_ms
        else measure_latency_ms(net, imgsz, device),
        "memory_mb": peak_memory_mb(device, rss.peak_mb),
        "train_time_s": train_time,
    }
    if not all(math.isfinite(v) for v in metrics.values()):
        raise RuntimeError(f"validation produced no metrics ({metrics}); the training diverged")
    final = {**metrics, **costs, "fitness": trial_fitness(metrics, ctx, costs), "imgsz": imgsz, "device": device,
             "best_pt": str(best), "train_args": str(Path(trainer.save_dir) / TRAIN_ARGS), "final": True}
    report(final)
    return final
