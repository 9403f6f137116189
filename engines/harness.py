"""Timing and memory of one engine: warm-up, then timed batches; latency percentiles, throughput, peak memory.

Peak RSS is sampled by a thread while the config loads and runs (the process may hold earlier configs' leftovers,
so it is an upper bound); CUDA peak memory comes from torch's allocator where torch is on the device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import psutil


@dataclass
class Timing:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float  # images per second
    runs: int
    throughput_noise: float = 0.0  # images per second: half-width of a ~95% interval over the timed blocks
    # this process's CPU time (every thread: the engine's own pools, spinning ones too) per image while timed: what
    # the engine costs a machine, beside which a server's CPU per request is its cost factor (serving/bundle)
    cpu_ms_per_image: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class PeakRss:
    """Peak resident memory of this process while the block runs, sampled every few milliseconds."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self.peak_mb = self._process.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._process.memory_info().rss / 2**20)


def time_batches(run: Callable[[], object], batch: int, *, warmup: int = 3, min_runs: int = 10,
                 min_time_s: float = 2.0, max_runs: int = 1000) -> Timing:
    """Call run() warmup times, then at least min_runs times and min_time_s seconds; latency is per call."""
    for _ in range(warmup):
        run()
    latencies: list[float] = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    while len(latencies) < max_runs and (len(latencies) < min_runs or time.perf_counter() - start < min_time_s):
        t0 = time.perf_counter()
        run()
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    ms = np.asarray(latencies) * 1000
    return Timing(p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
                  p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()),
                  throughput=batch * len(latencies) / total, runs=len(latencies),
                  throughput_noise=throughput_noise(latencies, batch),
                  cpu_ms_per_image=1000 * cpu_s / (batch * len(latencies)))


def time_lanes(runs: list[Callable[[], object]], batch: int, *, min_time_s: float = 2.0,
               min_runs: int = 10, warmup: int = 3) -> Timing:
    """time_batches for engine copies running side by side, one thread each: throughput (and its noise) is the
    sum of the copies', latency the slowest copy's."""
    from concurrent.futures import ThreadPoolExecutor

    if len(runs) == 1:
        return time_batches(runs[0], batch, warmup=warmup, min_time_s=min_time_s, min_runs=min_runs)
    cpu_start = time.process_time()
    with ThreadPoolExecutor(len(runs)) as pool:
        timings = list(pool.map(lambda run: time_batches(run, batch, warmup=warmup, min_time_s=min_time_s,
                                                         min_runs=min_runs), runs))
    # the copies' timed windows overlap (and each has its warm-up beside another's timed calls): the process's CPU
    # over all of them, per image of every call
    cpu_s = time.process_time() - cpu_start
    images = batch * sum(t.runs + warmup for t in timings)
    return Timing(p50_ms=max(t.p50_ms for t in timings), p90_ms=max(t.p90_ms for t in timings),
                  p99_ms=max(t.p99_ms for t in timings), mean_ms=float(np.mean([t.mean_ms for t in timings])),
                  throughput=sum(t.throughput for t in timings), runs=sum(t.runs for t in timings),
                  throughput_noise=sum(t.throughput_noise for t in timings),
                  cpu_ms_per_image=1000 * cpu_s / images)


def throughput_noise(latencies: list[float], batch: int, blocks: int = 5) -> float:
    """Two standard errors of the throughput, from consecutive blocks of calls (blocks, not single calls: a slow
    stretch of the machine slows neighbouring calls together)."""
    if len(latencies) < 2 * blocks:
        return 0.0
    rates = [batch * len(chunk) / sum(chunk) for chunk in np.array_split(np.asarray(latencies), blocks)]
    return float(2 * np.std(rates, ddof=1) / np.sqrt(blocks))


def cuda_peak_mb(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    except Exception:
        return None


def reset_cuda_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(torch.device(device))
