"""What the engines stage measures for a job: the device, the targets each configuration is held to, the
configurations and how they are searched, and the inputs it needs from the stages before it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yoloforge.core.errors import YoloforgeError
from yoloforge.core.rundir import RunDir
from yoloforge.engines.accuracy import accuracy_metric
from yoloforge.engines.base import EngineConfig
from yoloforge.engines.registry import config_space
from yoloforge.engines.selection import EngineTargets
from yoloforge.ray_app.spec import JobSpec


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
    int8_budget_s: float


def engine_plan(spec: JobSpec, trained_imgsz: int, device: str) -> EnginePlan:
    e = spec.engines
    configs = config_space(list(e.backends), list(e.precisions), list(e.batch_sizes),
                           list(e.imgsz or [trained_imgsz]), list(e.threads or [None]), device)
    return EnginePlan(configs=configs, mode="grid" if len(configs) <= e.max_configs else "ga",
                      max_configs=e.max_configs, min_time_s=e.min_time_s, val_images=e.val_images,
                      bundle_candidates=e.bundle_candidates, int8_budget_s=e.int8_budget_s)


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
