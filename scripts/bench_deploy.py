"""Deployed against promised: what the bundle's Go server delivers beside what the engines stage promised.

For each input size: a run of a real COCO `yolov8n.pt` on the real tomato export (../shared/real; the demo's
yolo11n on synthetic shapes where that is missing) goes through the engines stage (ONNX Runtime and OpenVINO,
fp32, batch 1 and 8), the chosen engine is exported as a bundle, and the bundle's own binary serves it natively
with real Redis (the answer cache on) and PostgreSQL (the inference log) on loopback. Every request carries a
new image, so each one misses the cache and runs the model.

- promised: what the selection promises for the chosen configuration (selection.json, report.html, the summary):
  its RPS through the bundle where the engines stage ranked candidates that way (engines.bundle_candidates, on by
  default), else its img/s for the engine alone; the engine-alone figure is printed beside it
- deployed: the bundle's RPS at 8 and 64 clients
- openvino_in_go: an OpenVINO-only selection's bundle (the Go server on ONNX Runtime's OpenVINO build) against
  OpenVINO's own img/s in Python, at the first input size
- lanes: the same bundle with the engine layout the engines stage chose (engine.workers x threads) against one
  copy on every core and copies of one thread each, each layout measured LAYOUT_REPEATS times, in turn
- engine.spin: the same bundle with ONNX Runtime's idle threads spinning (as the engines stage measured them)
- server_cost: the server process's CPU time per answered request (psutil: user + system, every thread, over the
  loaded window, 64 clients, batches no larger than the configuration's) against the engine's own CPU time per
  image for the same configuration, timed in this process with the server's engine settings (copies, threads,
  ONNX Runtime's idle threads not spinning, batch) on the same images (an ONNX Runtime configuration: the chosen
  one, else the fastest, since an OpenVINO bundle's server runs ONNX Runtime's OpenVINO build); with 1280x720
  camera JPEGs (frames of ../shared/real/people-walking.mp4, synthetic frames where it is missing), with photos
  already at the model's size (the tomato export's, resized) and, as information, with JPEGs of noise at the
  model's size (the slowest JPEGs to decode); beside it the server's own per-stage milliseconds, one request at a
  time, and Go's image/jpeg against libjpeg-turbo on the same frames (the gateway's BenchmarkDecodeFrames)

Goals:
- openvino_in_go: >= 0.9 of OpenVINO's own img/s
- lanes: the chosen layout's median RPS >= 0.95 of the best layout's median (each measured 3 times; the spread
  of each is printed)
- server_cost: the cost factor <= 1.10 with camera frames, at every input size
- server_cost_model_size: the cost factor <= 1.05 with images at the model's size, at every input size
Printed as information, not a goal: deployed against promised. The promise is the bundle's own RPS measured by
the engines stage minutes before, so the ratio can only miss by noise or a busier machine.

Usage: python scripts/bench_deploy.py [--imgsz 320 640] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_VERBOSE", "False")
ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from yoloforge.serving.loadgen import run_load, synthetic_images  # noqa: E402

KEY = "bench-key"
_SEEDS = iter(range(1000, 10**6))  # every load point sends images no earlier one sent: nothing is a cache hit
_FRAME_VARIANTS = iter(range(10**6))  # likewise for camera frames: (frame, JPEG quality) pairs never repeat
_PHOTO_VARIANTS = iter(range(10**6))  # and for photos at the model's size
CAMERA = (1280, 720)


def photos(n: int, imgsz: int) -> list[tuple[bytes, str]]:
    """n photos already at the model's size (imgsz x imgsz) no earlier call gave: the real tomato export's training
    images, each pass over them at another JPEG quality (80-95); synthetic images where it is missing."""
    import cv2

    files = sorted((REAL / "tomato" / "train" / "images").glob("*.jpg"))
    if not files:
        return synthetic_images(n, imgsz, seed=next(_SEEDS))
    out = []
    for _ in range(n):
        v = next(_PHOTO_VARIANTS)
        image = cv2.resize(cv2.imread(str(files[v % len(files)])), (imgsz, imgsz), interpolation=cv2.INTER_AREA)
        quality = 80 + (v // len(files)) % 16
        out.append((cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes(), "image/jpeg"))
    return out


def camera_frames(n: int) -> list[tuple[bytes, str]]:
    """n 1280x720 camera JPEGs no earlier call gave: frames of the real video, each pass over it at another JPEG
    quality (80-95), so that no request is a cache hit; synthetic frames where the video is missing."""
    import cv2
    import numpy as np

    video = REAL / "people-walking.mp4"
    out: list[tuple[bytes, str]] = []
    variants = [next(_FRAME_VARIANTS) for _ in range(n)]
    if not video.is_file():
        for v in variants:
            rng = np.random.default_rng(v)
            frame = cv2.GaussianBlur(rng.integers(0, 255, (CAMERA[1], CAMERA[0], 3), dtype=np.uint8), (9, 9), 3)
            out.append((cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes(), "image/jpeg"))
        return out
    cap = cv2.VideoCapture(str(video))
    count = max(1, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
    cap.set(cv2.CAP_PROP_POS_FRAMES, variants[0] % count)
    for v in variants:
        if v % count == 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, frame = cap.read()
        if not ok:  # past the end: from the start again
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = cap.read()
        frame = cv2.resize(frame, CAMERA) if frame.shape[1::-1] != CAMERA else frame
        quality = 80 + (v // count) % 16
        out.append((cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes(), "image/jpeg"))
    cap.release()
    return out


def build_run(work: Path, imgsz: int, backends: list[str]) -> Path:
    """A run directory whose best weights are the real pretrained model (speed does not depend on training),
    through intake and the engines stage."""
    from ultralytics import YOLO
    from yoloforge.core.rundir import RunDir
    from yoloforge.ray_app.intake.synth import synth_dataset
    from yoloforge.ray_app.pipeline import bench_run
    from yoloforge.ray_app.spec import parse_job
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.intake import stage_intake

    real = (REAL / "yolov8n.pt").is_file() and (REAL / "tomato").is_dir()
    model = str(REAL / "yolov8n.pt") if real else "yolo11n.yaml"
    data = REAL / "tomato" if real else synth_dataset(work / "shapes", "detect", n_train=16, n_val=8, imgsz=imgsz)
    spec = parse_job({"name": "deploy", "model": model, "data": {"path": str(data)}, "runs_dir": str(work),
                      "search": {"imgsz": imgsz}, "resources": {"dashboard": False},
                      "engines": {"backends": backends, "precisions": ["fp32"], "batch_sizes": [1, 8],
                                  "imgsz": [imgsz], "min_time_s": 2.0, "val_images": 16}})
    run = RunDir(spec.run_dir)
    with contextlib.redirect_stdout(io.StringIO()):
        stage_intake(RunState(spec))
        run.best.mkdir(parents=True, exist_ok=True)
        if real:
            shutil.copy2(model, run.best_weights)
        else:
            YOLO(model).save(str(run.best_weights))
        bench_run(run.path)
    return run.path


def deployed_rps(bundle: Path, env: dict[str, str], imgsz: int, clients: int, seconds: float, log: Path,
                 promised: float) -> tuple[float, float]:
    """RPS and p99 of the bundle's server at this many clients, every request a new image (cache misses)."""
    from tests.services import bundle_server

    requests = max(3 * clients, int(seconds * promised * 1.2))
    images = synthetic_images(requests + 16, imgsz, seed=next(_SEEDS))
    with bundle_server(bundle, env, log) as server:
        asyncio.run(run_load(server.url, images[-16:], concurrency=4, requests=16, duration=None, api_key=KEY))
        r = asyncio.run(run_load(server.url, images[:requests], concurrency=clients, requests=requests,
                                 duration=None, api_key=KEY))
    errors = sum(r.errors.values())
    if errors:
        print(f"  {errors} failed requests at {clients} clients: {r.errors}", flush=True)
    return r.rps, r.p99_ms


def one_at_a_time(bundle: Path, env: dict[str, str], imgsz: int, log: Path, n: int = 24) -> dict[str, float]:
    """The server's own per-stage milliseconds (timing_ms) for requests sent one at a time, each a new image:
    the engine's call inside the server without contention, beside its cost per image around it."""
    import numpy as np
    from yoloforge.serving.bundle import stage_times

    from tests.services import bundle_server

    with bundle_server(bundle, env, log) as server:
        stages = stage_times(server.url, KEY, synthetic_images(n + 4, imgsz, seed=next(_SEEDS)))
    return {"n": float(n), **{k: float(np.median(v[4:])) for k, v in stages.items()}}  # the first 4 warm up


def server_cost(bundle: Path, env: dict[str, str], images: list[tuple[bytes, str]], log: Path, clients: int = 64,
                alone: int = 16) -> dict[str, float]:
    """The server's CPU time per answered request under load (the first 16 images warm it up), its RPS, and its
    own per-stage milliseconds for `alone` further images sent one at a time (median)."""
    import numpy as np
    from yoloforge.serving.bundle import stage_times
    from yoloforge.serving.bundle.delivery import server_cpu_s

    from tests.services import bundle_server

    loaded = images[16: len(images) - alone]
    with bundle_server(bundle, env, log) as server:
        asyncio.run(run_load(server.url, images[:16], concurrency=4, requests=16, duration=None, api_key=KEY))
        before = server_cpu_s(server.process.pid)
        r = asyncio.run(run_load(server.url, loaded, concurrency=clients, requests=len(loaded), duration=None,
                                 api_key=KEY))
        cpu_ms = 1000 * (server_cpu_s(server.process.pid) - before) / max(r.ok, 1)
        stages = stage_times(server.url, KEY, images[len(images) - alone:])
    return {"cpu_ms": cpu_ms, "rps": r.rps, "errors": float(sum(r.errors.values())),
            **{k: float(np.median(v)) for k, v in stages.items()}}


def engine_cpu_ms(run_dir: Path, row: dict, bundle: Path, images: list[tuple[bytes, str]], seconds: float) -> float:
    """The engine's own CPU time per image with the bundle's engine settings (config.yaml: workers copies of
    threads threads each; ONNX Runtime's idle threads not spinning, as the server runs them), at the
    configuration's batch, on these images decoded and letterboxed as the servers do, the copies side by side:
    the cost factor's baseline, measured in this run apart from the server."""
    import itertools
    import json

    import yaml
    from yoloforge.core.rundir import RunDir
    from yoloforge.engines.harness import time_lanes
    from yoloforge.engines.processing import decode_for_model, preprocess
    from yoloforge.engines.registry import cpu_count
    from yoloforge.serving.served import ServedModel

    engine = yaml.safe_load((bundle / "config.yaml").read_text())["engine"]
    workers = int(engine["workers"])
    threads = int(engine["threads"]) or max(1, cpu_count() // workers)
    selection = json.loads((run_dir / "selection.json").read_text())
    served = ServedModel.from_row(RunDir(run_dir), selection, row)
    batch, imgsz, task = int(row["batch"]), int(row["imgsz"]), served.facts.task
    decoded = [decode_for_model(body, imgsz, task) for body, _ in images[: 16 * batch]]
    tensors = [preprocess([img for img, _ in decoded[i: i + batch]], imgsz, task,
                          [size for _, size in decoded[i: i + batch]])[0] for i in range(0, len(decoded), batch)]
    copies = [served.load(serving=True, threads=threads) for _ in range(workers)]
    try:
        runs = []
        for k, copy in enumerate(copies):
            inputs = itertools.cycle(tensors[k:] + tensors[:k])
            runs.append(lambda copy=copy, inputs=inputs: copy.infer(next(inputs)))
        return time_lanes(runs, batch, min_time_s=seconds, min_runs=10).cpu_ms_per_image
    finally:
        for copy in copies:
            copy.close()


def ort_bundle(run_dir: Path, row: dict, work: Path) -> tuple[dict, Path]:
    """The chosen row and its bundle where ONNX Runtime runs it; else the fastest ONNX Runtime row's: an
    OpenVINO selection's Go server runs ONNX Runtime's OpenVINO build, which Python cannot time beside it."""
    import json

    import pyarrow.parquet as pq
    from yoloforge.core.rundir import RunDir
    from yoloforge.serving.bundle import ServerSettings, export_bundle
    from yoloforge.serving.served import ServedModel

    if row["backend"] == "onnxruntime":
        return row, run_dir / "bundle"
    rows = [r for r in pq.read_table(run_dir / "engines.parquet").to_pylist()
            if r["backend"] == "onnxruntime" and r["status"] == "ok" and r["precision"] == row["precision"]]
    best = max(rows, key=lambda r: r["throughput"])
    selection = json.loads((run_dir / "selection.json").read_text())
    served = ServedModel.from_row(RunDir(run_dir), selection, best)
    out = export_bundle(run_dir, work / f"ort-{best['key']}", ServerSettings(max_batch_size=8, max_queue=256),
                        served=served).out_dir
    return best, out


def decoder_speeds(frames: list[tuple[bytes, str]], work: Path, benchtime: str) -> dict[str, float]:
    """Milliseconds per frame of Go's image/jpeg and libjpeg-turbo (whole, and for 320 and 640 px models) on these
    frames: the gateway's BenchmarkDecodeFrames."""
    import re
    import subprocess

    folder = work / "frames"
    folder.mkdir(exist_ok=True)
    for i, (body, _) in enumerate(frames):
        (folder / f"{i:03d}.jpg").write_bytes(body)
    proc = subprocess.run(["go", "test", "-run", "^$", "-bench", "BenchmarkDecodeFrames", "-benchtime", benchtime,
                           "./internal/yolo"], cwd=ROOT / "serving" / "gateway", capture_output=True, text=True,
                          env={**os.environ, "YOLOFORGE_BENCH_FRAMES": str(folder)}, timeout=600)
    found = re.findall(r"BenchmarkDecodeFrames/(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op", proc.stdout)
    if proc.returncode != 0 or not found:
        print(f"  decoder benchmark did not run: {(proc.stderr or proc.stdout).strip()[-500:]}", flush=True)
    return {name: float(ns) / 1e6 for name, ns in found}


LAYOUT_REPEATS = 3
STAGES = ("decode", "preprocess", "queue", "inference", "postprocess")


def measure_layouts(bundle: Path, env: dict[str, str], imgsz: int, seconds: float, work: Path,
                    promised: float) -> tuple[str, dict[str, list[float]]]:
    """RPS at 64 clients of the bundle with each engine layout (copies x threads): the one the engines stage chose
    (the bundle's config.yaml) beside one copy on every core and single-thread copies, LAYOUT_REPEATS times each,
    taken in turn so that a drift of the machine falls on every layout alike. Returns the chosen layout's name."""
    import yaml
    from yoloforge.engines.registry import cpu_count

    cores = cpu_count()
    engine = yaml.safe_load((bundle / "config.yaml").read_text())["engine"]
    workers = int(engine["workers"])
    threads = int(engine["threads"]) or max(1, cores // workers)  # 0: the server shares the cores out
    chosen_layout = f"{workers}x{threads}"
    layouts = {name: {"YOLOFORGE_ENGINE_WORKERS": str(w), "YOLOFORGE_ENGINE_THREADS": str(t)}
               for name, (w, t) in {chosen_layout: (workers, threads), f"1x{cores}": (1, cores),
                                    f"{cores}x1": (cores, 1)}.items()}
    measured: dict[str, list[float]] = {name: [] for name in layouts}
    for k in range(LAYOUT_REPEATS):
        for name, extra in layouts.items():
            measured[name].append(deployed_rps(bundle, {**env, **extra}, imgsz, 64, seconds,
                                               work / f"lanes-{name}-{k}.log", promised)[0])
    print(f"  lanes (copies x threads; {chosen_layout} chosen), RPS at 64 clients, median [min-max] of "
          f"{LAYOUT_REPEATS}: " + ", ".join(f"{k} {median(v):.1f} [{min(v):.1f}-{max(v):.1f}]"
                                            for k, v in measured.items()), flush=True)
    return chosen_layout, measured


def median(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values))


def chosen(run_dir: Path) -> tuple[dict, float]:
    """The chosen config's row and what the selection promises for it; prints what the engines stage measured
    through the bundle (engines.bundle_candidates)."""
    import json

    from yoloforge.engines.selection import Selection

    selection = json.loads((run_dir / "selection.json").read_text())
    for m in (selection.get("bundle_ranking") or {}).get("measured", []):
        through = f"{m['rps']:.1f} RPS through the bundle" if "rps" in m else f"bundle did not run: {m['error']}"
        print(f"  ranked: {m['key']:<40} {m['throughput']:6.1f} img/s engine alone, {through}", flush=True)
    chosen = Selection(selection)
    return chosen.served, chosen.promise()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--seconds", type=float, default=15.0, help="about how long each load point runs")
    parser.add_argument("--quick", action="store_true", help="128 px, 4 s per point (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.imgsz, args.seconds = [128], 4.0
    from yoloforge.serving.bundle import ServerSettings, export_bundle

    from tests.services import postgres_server, redis_server

    work = Path(tempfile.mkdtemp(prefix="bench_deploy_"))
    rows, goals = [], {}
    try:
        with redis_server(work / "redis") as redis, postgres_server(work / "pg") as pg:
            env = {"YOLOFORGE_API_KEYS": KEY, "YOLOFORGE_POSTGRES_DSN": pg.url, "YOLOFORGE_REDIS_ADDR": redis.url,
                   "YOLOFORGE_LOG_LEVEL": "warn"}
            ratios, spins = [], []
            costs: list[tuple[int, str, float, dict[str, float], float]] = []
            decoders = decoder_speeds(camera_frames(16), work, "0.2s" if args.quick else "2s")
            for imgsz in args.imgsz:
                print(f"@{imgsz}: engines stage (ONNX Runtime, OpenVINO) ...", flush=True)
                run_dir = build_run(work / f"run{imgsz}", imgsz, ["onnxruntime", "openvino"])
                row, promised = chosen(run_dir)
                bundle = export_bundle(run_dir, settings=ServerSettings(max_batch_size=8, max_queue=256)).out_dir
                got = {c: deployed_rps(bundle, env, imgsz, c, args.seconds, work / f"s{imgsz}-{c}.log", promised)
                       for c in (8, 64)}
                if row["backend"] == "onnxruntime":  # OpenVINO's CPU plugin runs its own threads: spin is ORT's
                    spin = deployed_rps(bundle, {**env, "YOLOFORGE_ENGINE_SPIN": "1"}, imgsz, 64, args.seconds,
                                        work / f"spin{imgsz}.log", promised)[0]
                    print(f"  ONNX Runtime threads spinning when idle (engine.spin): {spin:.1f} RPS at 64 clients, "
                          f"against {got[64][0]:.1f} without", flush=True)
                    spins.append((imgsz, got[64][0], spin))
                ratio = got[64][0] / promised
                ratios.append(ratio)
                rows.append((f"@{imgsz} {row['key']}", row["throughput"], promised, got[8][0], got[64][0],
                             got[64][1], ratio))
                print(f"  promised {promised:.1f} ({row['key']}, engine alone {row['throughput']:.1f} img/s); "
                      f"deployed {got[8][0]:.1f} RPS at 8 clients, "
                      f"{got[64][0]:.1f} at 64 (p99 {got[64][1]:.0f} ms): {ratio:.2f}", flush=True)
                cost_row, cost_bundle = ort_bundle(run_dir, row, work / f"cost{imgsz}")
                expected = max(32, int(args.seconds * got[64][0]))  # about `seconds` of load at the RPS just measured
                # the server batches no more than the configuration the engine was timed at: the same batch
                same_batch = {**env, "YOLOFORGE_MAX_BATCH_SIZE": str(cost_row["batch"])}
                print(f"  server cost of {cost_row['key']} (the engines stage's own CPU figure for it: "
                      f"{cost_row['cpu_ms_per_image']:.1f} ms an image)", flush=True)
                for kind, images in (("camera", camera_frames(expected + 32)),
                                     ("model size", photos(expected + 32, imgsz)),
                                     ("noise", synthetic_images(expected + 32, imgsz, seed=next(_SEEDS)))):
                    engine_cpu = engine_cpu_ms(run_dir, cost_row, cost_bundle, images, args.seconds / 3)
                    cost = server_cost(cost_bundle, same_batch, images, work / f"cost{imgsz}-{kind[0]}.log")
                    costs.append((imgsz, kind, cost["cpu_ms"] / engine_cpu, cost, engine_cpu))
                    print(f"  server cost, {kind} JPEGs: {cost['cpu_ms']:.1f} ms CPU a request against the engine's "
                          f"{engine_cpu:.1f} ms an image: {cost['cpu_ms'] / engine_cpu:.2f}x ({cost['rps']:.1f} RPS); "
                          "one at a time (ms): " + ", ".join(f"{k} {cost[k]:.1f}" for k in STAGES if k in cost),
                          flush=True)
                if imgsz == args.imgsz[0]:
                    goals["lanes"] = measure_layouts(bundle, env, imgsz, args.seconds, work, promised)
                    print(f"@{imgsz}: OpenVINO only ...", flush=True)
                    ov_run = build_run(work / f"ov{imgsz}", imgsz, ["openvino"])
                    ov_row, _ = chosen(ov_run)
                    ov_bundle = export_bundle(ov_run, settings=ServerSettings(max_batch_size=8, max_queue=256)).out_dir
                    ov_rps = deployed_rps(ov_bundle, env, imgsz, 64, args.seconds, work / "ov.log",
                                          ov_row["throughput"])[0]
                    goals["openvino_in_go"] = (ov_rps / ov_row["throughput"], ov_row["throughput"], ov_rps)
                    rows.append((f"@{imgsz} {ov_row['key']}", ov_row["throughput"], ov_row["throughput"],
                                 float("nan"), ov_rps, float("nan"), ov_rps / ov_row["throughput"]))
                    print(f"  OpenVINO in Python {ov_row['throughput']:.1f} img/s; the Go server on it {ov_rps:.1f} "
                          "RPS at 64 clients", flush=True)
                    alone = one_at_a_time(ov_bundle, env, imgsz, work / "ov-alone.log")
                    print(f"  one request at a time, the Go server's stages (ms, median of {alone.pop('n'):.0f}): "
                          + ", ".join(f"{k} {v:.1f}" for k, v in alone.items())
                          + f"; OpenVINO's own call in Python: p50 {ov_row['p50_ms']:.1f} ms", flush=True)
            goals["deployed_vs_promised"] = (min(ratios), ratios)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'configuration':<44} {'engine':>7} {'promised':>9} {'RPS@8':>7} {'RPS@64':>7} {'p99@64':>7} {'ratio':>6}")
    for name, engine, promised, r8, r64, p99, ratio in rows:
        print(f"{name:<44} {engine:>7.1f} {promised:>9.1f} {r8:>7.1f} {r64:>7.1f} {p99:>7.0f} {ratio:>6.2f}")
    print()
    for imgsz, off, on in spins:
        print(f"engine.spin @{imgsz}: {on:.1f} RPS spinning against {off:.1f} not ({on / off:.2f}x)")
    print()
    if decoders:
        whole = decoders.get("image-jpeg-whole")
        print(f"decoding a {CAMERA[0]}x{CAMERA[1]} camera JPEG (ms, {len(decoders)} ways, same 16 frames): "
              + ", ".join(f"{k} {v:.2f}" + (f" ({whole / v:.1f}x image/jpeg)" if whole and k != "image-jpeg-whole"
                                             else "") for k, v in decoders.items()))
    print(f"{'server cost':<14} {'images':<11} {'server ms':>9} {'engine ms':>9} {'factor':>6}  "
          + " ".join(f"{k:>11}" for k in STAGES))
    for imgsz, kind, factor, cost, engine_cpu in costs:
        print(f"{'@' + str(imgsz):<14} {kind:<11} {cost['cpu_ms']:>9.2f} {engine_cpu:>9.2f} {factor:>6.2f}  "
              + " ".join(f"{cost.get(k, float('nan')):>11.2f}" for k in STAGES))
    print()
    worst, ratios = goals["deployed_vs_promised"]
    print(f"deployed against promised (information: the promise is this bundle's RPS measured by the engines stage): "
          f"{worst:.2f} at 64 clients, worst of {', '.join(f'{r:.2f}' for r in ratios)}")
    share, own, go = goals["openvino_in_go"]
    print(f"GOAL openvino_in_go: {share:.2f} ({go:.1f} RPS against OpenVINO's own {own:.1f} img/s) (target >= 0.90) "
          f"{'PASS' if share >= 0.9 else 'FAIL'}")
    chosen_layout, lanes = goals["lanes"]
    medians = {k: median(v) for k, v in lanes.items()}
    best = max(medians, key=medians.__getitem__)
    share = medians[chosen_layout] / medians[best]
    spread = ", ".join(f"{k} {medians[k]:.1f} [{min(v):.1f}-{max(v):.1f}]" for k, v in lanes.items())
    for name, kind, target in (("server_cost", "camera", 1.10), ("server_cost_model_size", "model size", 1.05)):
        factors = {imgsz: factor for imgsz, k, factor, _, _ in costs if k == kind}
        worst_factor = max(factors.values())
        listing = ", ".join(f"@{k} {v:.2f}" for k, v in factors.items())
        print(f"GOAL {name}: {worst_factor:.2f}x the engine's CPU per image, worst of {listing} ({kind} JPEGs) "
              f"(target <= {target:.2f}) {'PASS' if worst_factor <= target else 'FAIL'}")
    print(f"GOAL lanes: the chosen layout {chosen_layout} delivers {share:.2f} of the best layout {best}'s median RPS "
          f"({spread}) (target >= 0.95) {'PASS' if share >= 0.95 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
