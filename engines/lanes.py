"""How many copies of an engine to run side by side, and the threads of each: the one rule the preview's
replicas and the bundle's Go server (engine.workers) both follow."""

from __future__ import annotations

from yoloforge.engines.base import EngineConfig
from yoloforge.engines.registry import LANE_BACKENDS, cpu_count


def engine_lanes(concurrent_batches: int, config: EngineConfig) -> tuple[int, int | None]:
    """How many copies of the engine a replica runs side by side, and the CPU threads of each (None: as chosen).

    A layout the engines stage measured (config.lanes: one copy on every core, or single-thread copies) is the
    answer. Otherwise, on a CPU, engine copies running at once with a share of the cores each do more than one
    copy using them all (docs/measured-defaults.md), so each of the concurrent batches gets its own copy. On a GPU,
    or with PyTorch (its threads are per process), the batches share one."""
    if config.device != "cpu" or config.backend not in LANE_BACKENDS:
        return 1, None
    if config.lanes is not None:
        return config.lanes, config.threads
    cores = config.threads or cpu_count()
    lanes = max(1, min(concurrent_batches, cores))
    return lanes, max(1, cores // lanes)
