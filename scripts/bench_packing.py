"""Search trials sharing one GPU: what fractional-GPU trials (resources.gpu: 0.25) buy.

Runs the search's own trial function (ray_app.trainable.run_trial: Ultralytics train + val + cost measurement)
in N plain processes at once on GPU 0, for N = 1, 2, 4, 8, each with cores/N CPU threads as Ray gives a trial;
Ray is not needed (it does the same packing by giving each trial CUDA_VISIBLE_DEVICES and a fraction of the GPU's
logical count). Prints, per N: wall time, trials per hour, speed-up against one trial at a time, the GPU's
utilisation and memory (NVML), and the trials' fitness (same seed and config, so sharing must not change it).

Goals (targets set for issue "Training search on Ray Tune", which asks for 0.25 → four trials per GPU):
- packing_4_per_gpu: trials per hour with 4 trials on the GPU against 1 at a time (target >= 2.0x).
- fitness_unchanged: |median fitness at 4 per GPU - median alone| (target <= 0.05).

Usage: python scripts/bench_packing.py [--counts 1 2 4 8] [--epochs 10] [--imgsz 320] [--train-images 256]
Needs a CUDA GPU (it says so and exits 0 without one); about 5 minutes on an H100.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_VERBOSE", "False")


def one_trial(args: tuple[str, str, int, int, int, Path]) -> dict[str, Any]:
    data, model, epochs, imgsz, threads, trial_dir = args
    os.environ["OMP_NUM_THREADS"] = str(threads)  # as Ray sets it for a trial with that many CPUs
    import torch
    from yoloforge.ga.fitness import DEFAULT_WEIGHTS
    from yoloforge.ray_app.search.hyperparameters import auto_lr0
    from yoloforge.ray_app.search.trainable import TrialContext, run_trial

    torch.set_num_threads(threads)
    ctx = TrialContext(model=model, data=data, task="detect", epochs=epochs, imgsz=imgsz, batch=16, seed=0,
                       fitness_weights=dict(DEFAULT_WEIGHTS))
    config = {"optimizer": "AdamW", "lr0": auto_lr0(3), "mosaic": 0.0}
    started = time.perf_counter()
    final = run_trial(config, ctx, "0", trial_dir, lambda _: None)
    return {**final, "wall_s": time.perf_counter() - started,
            "cuda_reserved_mb": torch.cuda.max_memory_reserved() / 2**20}


class GpuSampler:
    """GPU utilisation and used memory every 0.2 s through NVML (nvidia-ml-py), while the block runs."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.util: list[float] = []
        self.used_mb: list[float] = []
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.util.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
            self.used_mb.append(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**20)

    def __enter__(self) -> GpuSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--train-images", type=int, default=256)
    parser.add_argument("--model", default="yolo11n.yaml")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: this benchmark measures trials sharing one GPU, nothing to measure")
        return 0
    from yoloforge.engines.registry import cpu_count
    from yoloforge.ray_app.intake.check import check_dataset
    from yoloforge.ray_app.intake.synth import synth_dataset

    work = Path(tempfile.mkdtemp(prefix="bench_packing_"))
    source = synth_dataset(work / "shapes", "detect", n_train=args.train_images, n_val=args.train_images // 4,
                           imgsz=args.imgsz, seed=0)
    data = check_dataset(source).write_clean(work / "data") / "data.yaml"
    cores = cpu_count()
    print(f"{torch.cuda.get_device_name(0)}, {cores} cores; yolo11n from .yaml, {args.train_images} images at "
          f"{args.imgsz} px, {args.epochs} epochs per trial")
    print(f"{'trials':>6} {'wall s':>7} {'trials/h':>9} {'speed-up':>8} {'GPU util %':>10} {'GPU MB':>8} "
          f"{'MB/trial':>8} {'fitness median':>14}")
    results: dict[int, tuple[float, list[float]]] = {}
    ctx = mp.get_context("spawn")
    for n in args.counts:
        jobs = [(str(data), args.model, args.epochs, args.imgsz, max(1, cores // n), work / f"n{n}" / f"t{i}")
                for i in range(n)]
        with GpuSampler() as gpu, ctx.Pool(n) as pool:
            started = time.perf_counter()
            finals = pool.map(one_trial, jobs)
            wall = time.perf_counter() - started
        per_hour = n / wall * 3600
        base = results[args.counts[0]][0] if results else per_hour
        fitness = [f["fitness"] for f in finals]
        results[n] = (per_hour, fitness)
        busy = [u for u in gpu.util if u > 0] or [0.0]
        print(f"{n:>6} {wall:>7.1f} {per_hour:>9.0f} {per_hour / base:>7.2f}x {statistics.mean(busy):>10.0f} "
              f"{max(gpu.used_mb, default=0):>8.0f} {statistics.mean(f['cuda_reserved_mb'] for f in finals):>8.0f} "
              f"{statistics.median(fitness):>14.4f}", flush=True)
    print()
    alone = results.get(1)
    four = results.get(4)
    if alone and four:
        speedup = four[0] / alone[0]
        drift = abs(statistics.median(four[1]) - statistics.median(alone[1]))
        print(f"GOAL packing_4_per_gpu: {speedup:.2f}x the trials per hour of one at a time (target >= 2.0x) "
              f"{'PASS' if speedup >= 2.0 else 'FAIL'}")
        print(f"GOAL fitness_unchanged: {drift:.4f} median fitness difference (target <= 0.05) "
              f"{'PASS' if drift <= 0.05 else 'FAIL'}")
    else:
        print("GOAL packing_4_per_gpu: not measured (needs --counts with 1 and 4) FAIL")
        print("GOAL fitness_unchanged: not measured (needs --counts with 1 and 4) FAIL")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
