"""The driver side: one Ray actor per backend, configs measured one at a time (they would share the CPU
otherwise, which ruins timings), and the config space covered by a full grid or searched with ga/ when large.

Ray is imported where an actor is made, so LocalPool (the same workers in this process) runs where Ray is not
installed, e.g. a GPU machine that only has PyTorch and Ultralytics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from yoloforge.engines.base import EngineConfig
from yoloforge.engines.registry import cpu_count, unavailable_reason
from yoloforge.engines.selection import EngineTargets, baseline_row, violation
from yoloforge.engines.worker import BackendWorker
from yoloforge.ga.algorithm import GeneticAlgorithm
from yoloforge.ga.space import Gene, SearchSpace

Row = dict[str, Any]


class BackendPool:
    """An actor per backend, started when first needed and stopped when another backend's turn comes; a dead or
    hung actor is replaced and its config reported failed."""

    def __init__(self, worker_kwargs: dict[str, Any], *, timeout_s: float = 900, num_cpus: int | None = None) -> None:
        self.worker_kwargs = worker_kwargs
        self.timeout_s = timeout_s
        self.num_cpus = num_cpus or cpu_count()
        self.actors: dict[str, Any] = {}

    def _actor(self, config: EngineConfig) -> Any:
        import ray

        if config.backend not in self.actors:
            # one backend at a time: each actor holds the cores it times on, and two would wait on each other
            self.close()
            gpus = 1 if config.device.startswith("cuda") else 0
            remote = ray.remote(BackendWorker).options(num_cpus=self.num_cpus, num_gpus=gpus,
                                                       name=None, max_restarts=0)
            self.actors[config.backend] = remote.remote(**self.worker_kwargs)
        return self.actors[config.backend]

    def measure(self, config: EngineConfig) -> Row:
        if (row := _unavailable_row(config)) is not None:
            return row
        import ray

        actor = self._actor(config)
        try:
            return ray.get(actor.measure.remote(config.as_dict()), timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            why = f"no answer within {self.timeout_s:.0f} s (hung); the backend's process was stopped"
        except ray.exceptions.RayActorError as err:
            why = f"the backend's process died: {_cause(err)}"
        except ray.exceptions.RayTaskError as err:
            why = _cause(err)
        ray.kill(self.actors.pop(config.backend), no_restart=True)
        return {**config.as_dict(), "key": config.key, "status": "failed", "reason": why}

    def inspect(self, config: EngineConfig, split: str, **what: Any) -> dict[str, Any] | str:
        """BackendWorker.inspect in the backend's actor, or why it failed."""
        import ray

        try:
            return ray.get(self._actor(config).inspect.remote(config.as_dict(), split, **what), timeout=self.timeout_s)
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as err:
            if (actor := self.actors.pop(config.backend, None)) is not None:
                ray.kill(actor, no_restart=True)
            return _cause(err) if isinstance(err, ray.exceptions.RayTaskError) else type(err).__name__

    def close(self) -> None:
        if self.actors:
            import ray

            for actor in self.actors.values():
                ray.kill(actor, no_restart=True)
        self.actors.clear()


class LocalPool:
    """BackendPool's measure() in this process, one backend's worker at a time: no isolation from a crashing
    backend, for machines without Ray (benchmarks on a lent GPU) and for debugging a backend."""

    def __init__(self, worker_kwargs: dict[str, Any]) -> None:
        self.worker_kwargs = worker_kwargs
        self.workers: dict[str, BackendWorker] = {}

    def measure(self, config: EngineConfig) -> Row:
        if (row := _unavailable_row(config)) is not None:
            return row
        if config.backend not in self.workers:
            self.close()
            self.workers[config.backend] = BackendWorker(**self.worker_kwargs)
        return self.workers[config.backend].measure(config.as_dict())

    def inspect(self, config: EngineConfig, split: str, **what: Any) -> dict[str, Any] | str:
        if config.backend not in self.workers:
            self.close()
            self.workers[config.backend] = BackendWorker(**self.worker_kwargs)
        try:
            return self.workers[config.backend].inspect(config.as_dict(), split, **what)
        except Exception as err:
            return f"{type(err).__name__}: {err}"

    def close(self) -> None:
        self.workers.clear()


def _unavailable_row(config: EngineConfig) -> Row | None:
    """The row of a config that cannot run here at all (known without loading anything), else None."""
    reason = unavailable_reason(config)
    return {**config.as_dict(), "key": config.key, "status": "unavailable", "reason": reason} if reason else None


def _cause(err: Exception) -> str:
    """The innermost 'SomeError: message' line of a Ray error (its first lines only name the actor)."""
    lines = [line.strip() for line in str(err).splitlines()]
    causes = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b.*", line)]
    return (causes[-1] if causes else lines[0] if lines else type(err).__name__)[:400]


def baseline_config(configs: list[EngineConfig], trained_imgsz: int, device: str) -> EngineConfig:
    for c in configs:
        if c.backend == "pytorch" and c.precision == "fp32" and c.imgsz == trained_imgsz and c.batch == 1 \
                and not c.options:
            return c
    return EngineConfig("pytorch", "fp32", 1, trained_imgsz, None, device)


def run_grid(pool: BackendPool | LocalPool, configs: list[EngineConfig], on_row: Callable[[Row], None]) -> list[Row]:
    rows = []
    for config in sorted(configs, key=lambda c: (c.backend, c.imgsz, c.precision, c.batch)):
        rows.append(pool.measure(config))
        on_row(rows[-1])
    return rows


def _space(configs: list[EngineConfig]) -> tuple[SearchSpace, dict[tuple[Any, ...], EngineConfig]]:
    variants = sorted({(c.backend, c.precision, c.options) for c in configs}, key=str)
    genes = [Gene("variant", "cat", choices=tuple(range(len(variants)))),
             Gene("batch", "cat", choices=tuple(sorted({c.batch for c in configs}))),
             Gene("imgsz", "cat", choices=tuple(sorted({c.imgsz for c in configs}))),
             Gene("threads", "cat", choices=tuple(sorted({c.threads or 0 for c in configs})))]
    lookup = {(variants.index((c.backend, c.precision, c.options)), c.batch, c.imgsz, c.threads or 0): c
              for c in configs}
    return SearchSpace(tuple(genes)), lookup


def run_search(pool: BackendPool | LocalPool, configs: list[EngineConfig], targets: EngineTargets, trained_imgsz: int,
               budget: int, on_row: Callable[[Row], None], seed: int = 0) -> list[Row]:
    """Measure the baseline, then let the GA choose which configs to measure: maximise throughput subject to
    the targets (as constraint violation), until budget configs ran or the GA has nothing new to propose."""
    device = configs[0].device if configs else "cpu"
    first = baseline_config(configs, trained_imgsz, device)
    rows: dict[EngineConfig, Row] = {first: pool.measure(first)}
    on_row(rows[first])
    # what cannot run here is reported without a measurement and kept out of the GA's space
    for config in configs:
        if unavailable_reason(config) and config not in rows:
            rows[config] = pool.measure(config)
            on_row(rows[config])
    configs = [c for c in configs if not unavailable_reason(c)] or configs
    base = baseline_row(list(rows.values()), trained_imgsz)
    base_acc = base.get(targets.metric) if base else None
    space, lookup = _space(configs)
    pop = max(3, min(8, budget // 4))
    ga = GeneticAlgorithm(space, pop_size=pop, seed=seed, max_generations=math.ceil(budget / pop) + 2)
    measured = sum(r.get("status") != "unavailable" for r in rows.values())
    while measured < budget:
        asked = ga.ask()
        if not asked:
            break
        F, cv = [], []
        # measure backend by backend, so each generation starts each backend's actor at most once
        order = sorted(range(len(asked)), key=lambda i: asked[i]["variant"])
        for genes in [asked[i] for i in order]:
            config = lookup.get((genes["variant"], genes["batch"], genes["imgsz"], genes["threads"]))
            if config is None:
                F.append([0.0])
                cv.append(1e6)
                continue
            if config not in rows and measured < budget:
                rows[config] = pool.measure(config)
                on_row(rows[config])
                measured += rows[config].get("status") != "unavailable"
            row = rows.get(config)
            if row is None:  # budget spent mid-generation
                F.append([0.0])
                cv.append(1e6)
                continue
            F.append([-(row.get("throughput") or 0.0)])
            cv.append(violation(row, targets, base_acc) if row.get("status") == "ok" else 1e3)
        back = np.argsort(order)  # results in the order the GA asked
        ga.tell(np.asarray(F)[back], np.asarray(cv)[back])
        if ga.stop_reason() == "max_generations" or all(c in rows for c in configs):
            break
    return list(rows.values())
