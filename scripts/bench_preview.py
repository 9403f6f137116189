"""The Ray Serve preview under load: dynamic batching against none, beside the engine's raw throughput.

Builds a run directory around yolo11n (from its .yaml; speed does not depend on training) exported to ONNX
Runtime fp32 at --imgsz, measures the engine alone (batch 1 and --max-batch) in this process, then serves it
twice — max_batch_size=1 and max_batch_size=--max-batch — and drives each with scripts/loadgen.py at 1, 8 and
64 concurrent clients for --duration seconds.

Goals (issue "Ray Serve preview"):
- rps_64_vs_raw: RPS at 64 clients with batching >= 85% of the engine's raw throughput (the best of its batches,
  run as one copy with the selected threads and as the replica runs it: one copy per concurrent batch on a CPU)
- batching_not_worse: batching's RPS >= none's at every concurrency (within 5% noise)
- p99_bound: p99 at --max-batch clients <= batch wait + two batches' inference time (raw, at --max-batch)
- zero_errors_below_capacity: no failed request at 1 and --max-batch clients

Usage: python scripts/bench_preview.py [--imgsz 320] [--max-batch 8] [--duration 10] [--quick] [--run RUN_DIR]
(--run: serve that run directory's chosen engine instead of building one; it must hold engine files for batch 1
and --max-batch, as the test suite's shared served run does)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_VERBOSE", "False")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from yoloforge.serving.loadgen import run_load, synthetic_images  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_run(work: Path, imgsz: int, max_batch: int) -> Path:
    import contextlib
    import io

    from ultralytics import YOLO
    from yoloforge.ray_app.intake.synth import synth_dataset
    from yoloforge.ray_app.pipeline import bench_run
    from yoloforge.ray_app.spec import parse_job
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.intake import stage_intake

    data = synth_dataset(work / "shapes", "detect", n_train=16, n_val=8, imgsz=imgsz, seed=0)
    spec = parse_job({"name": "bench", "model": "yolo11n.yaml", "data": {"path": str(data)},
                      "runs_dir": str(work / "runs"), "search": {"imgsz": imgsz}, "resources": {"dashboard": False},
                      "engines": {"backends": ["onnxruntime"], "precisions": ["fp32"],
                                  "batch_sizes": sorted({1, max_batch}), "min_time_s": 1.0, "val_images": 8,
                                  "bundle_candidates": 0}})  # the engine's choice: this bench is not the Go server's
    with contextlib.redirect_stdout(io.StringIO()):
        stage_intake(RunState(spec))
        (spec.run_dir / "best").mkdir()
        YOLO("yolo11n.yaml").save(str(spec.run_dir / "best" / "best.pt"))
        bench_run(spec.run_dir)
    return spec.run_dir


def raw_throughput(run_dir: Path, batch: int, seconds: float, lanes: int = 1,
                   threads: int | None = None) -> tuple[float, float]:
    """Images/s and mean ms per call of the served engine at this batch, alone in this process: one copy with
    the selected threads, or `lanes` copies of `threads` threads each running at once (as the replica runs them)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from yoloforge.engines.harness import time_batches
    from yoloforge.serving.served import ServedModel

    served = ServedModel.from_run(run_dir)
    engines = [served.load(batch, threads=threads) for _ in range(lanes)]
    x = np.random.default_rng(0).random((batch, 3, served.config.imgsz, served.config.imgsz), dtype=np.float32)
    with ThreadPoolExecutor(lanes) as pool:
        timings = list(pool.map(lambda e: time_batches(lambda: e.infer(x), batch, min_time_s=seconds), engines))
    for engine in engines:
        engine.close()
    return sum(t.throughput for t in timings), float(np.mean([t.mean_ms for t in timings]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--wait-ms", type=float, default=5.0)
    parser.add_argument("--concurrent-batches", type=int, default=2, help="batches the replica runs at once")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--quick", action="store_true", help="128 px, 3 s per point (smoke run)")
    parser.add_argument("--run", type=Path, help="an existing run directory to serve (read only)")
    args = parser.parse_args()
    if args.quick:
        args.imgsz, args.duration = 128, 3.0
    import ray
    from yoloforge.engines.lanes import engine_lanes
    from yoloforge.serving import preview
    from yoloforge.serving.served import ServedModel

    if args.run:
        run_dir = args.run
        print(f"serving {run_dir}'s chosen engine", flush=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="bench_preview_"))
        print(f"building the run (yolo11n, ONNX Runtime fp32 @{args.imgsz}) ...", flush=True)
        run_dir = build_run(work, args.imgsz, args.max_batch)
    seconds = max(1.0 if args.quick else 2.0, args.duration / 3)  # the engine alone, per point
    raw = {b: raw_throughput(run_dir, b, seconds) for b in sorted({1, args.max_batch})}
    print("engine alone: " + ", ".join(f"batch {b}: {t:.1f} img/s ({ms:.1f} ms/call)" for b, (t, ms) in raw.items()))
    lanes, threads = engine_lanes(args.concurrent_batches, ServedModel.from_run(run_dir).config)
    raw_best = max(t for t, _ in raw.values())
    if lanes > 1:  # the replica's layout is part of what the engine can do: the ratio is against the best of both
        laned = {b: raw_throughput(run_dir, b, seconds, lanes, threads) for b in sorted({1, args.max_batch})}
        print(f"engine alone, {lanes} copies of {threads} thread(s) at once: "
              + ", ".join(f"batch {b}: {t:.1f} img/s ({ms:.1f} ms/call)" for b, (t, ms) in laned.items()))
        raw_best = max(raw_best, *(t for t, _ in laned.values()))

    images = synthetic_images(16, args.imgsz)
    results: dict[tuple[int, int], object] = {}
    print(f"ingress: {'HAProxy' if preview.use_haproxy_ingress() else 'Serve proxy'} "
          f"(YOLOFORGE_PREVIEW_INGRESS=proxy for Serve's Python proxy)")
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for max_batch in (1, args.max_batch):
            url = preview.start(str(run_dir), port=free_port(), max_batch_size=max_batch, batch_wait_ms=args.wait_ms,
                                max_queued_requests=64, concurrent_batches=args.concurrent_batches)
            asyncio.run(run_load(url, images, concurrency=4, requests=40, duration=None))  # warm-up
            for clients in args.clients:
                result = asyncio.run(run_load(url, images, concurrency=clients, duration=args.duration))
                results[(max_batch, clients)] = result
                print(f"max_batch_size {max_batch:>3}  clients {clients:>3}: {result.rps:7.1f} RPS  "
                      f"p50 {result.p50_ms:7.1f}  p99 {result.p99_ms:7.1f} ms  errors {result.errors or 0}  "
                      f"mean batch {result.mean_batch or 0:.2f}", flush=True)
            preview.stop()
            time.sleep(1)
    finally:
        ray.shutdown()

    print()
    print(f"{'clients':>7} {'RPS none':>9} {'RPS batch':>9} {'ratio':>6} {'p99 none':>9} {'p99 batch':>9} "
          f"{'vs raw':>7}")
    for clients in args.clients:
        none, dyn = results[(1, clients)], results[(args.max_batch, clients)]
        print(f"{clients:>7} {none.rps:>9.1f} {dyn.rps:>9.1f} {dyn.rps / max(none.rps, 1e-9):>6.2f} "  # type: ignore[attr-defined]
              f"{none.p99_ms:>9.1f} {dyn.p99_ms:>9.1f} {dyn.rps / raw_best:>7.2f}")  # type: ignore[attr-defined]
    top = max(args.clients)
    mid = args.max_batch if args.max_batch in args.clients else sorted(args.clients)[len(args.clients) // 2]
    share = results[(args.max_batch, top)].rps / raw_best  # type: ignore[attr-defined]
    worst = min(results[(args.max_batch, c)].rps / max(results[(1, c)].rps, 1e-9)  # type: ignore[attr-defined]
                for c in args.clients)
    bound = args.wait_ms + 2 * raw[args.max_batch][1]
    p99 = results[(args.max_batch, mid)].p99_ms  # type: ignore[attr-defined]
    below = [results[(mb, c)] for mb in (1, args.max_batch) for c in args.clients if c <= args.max_batch]
    errors = sum(sum(r.errors.values()) for r in below)  # type: ignore[attr-defined]
    print()
    print(f"GOAL rps_{top}_vs_raw: {share:.2f} of the engine's {raw_best:.1f} img/s (target >= 0.85) "
          f"{'PASS' if share >= 0.85 else 'FAIL'}")
    print(f"GOAL batching_not_worse: worst ratio {worst:.2f} batching/none (target >= 0.95) "
          f"{'PASS' if worst >= 0.95 else 'FAIL'}")
    print(f"GOAL p99_bound: {p99:.1f} ms at {mid} clients (target <= {bound:.1f} ms) "
          f"{'PASS' if p99 <= bound else 'FAIL'}")
    print(f"GOAL zero_errors_below_capacity: {errors} errors (target 0) {'PASS' if errors == 0 else 'FAIL'}")
    if not args.run:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
