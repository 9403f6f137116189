"""INT8 recipes measured on the user's own data: today's one recipe against the searched one, per model, input size
and int8 backend, in one run.

Models: COCO yolov8n fine-tuned --epochs at 320 px on a real dataset (--real: the Roboflow tomato export, read
through yoloforge's intake), at each of --sizes; and the suite's synthetic detector (yolo11n trained on 128 px
shapes, as tests/conftest.py trains it), at its own size (its images are 128 px), measured on 200 more images
of the same generator. With ONNX Runtime and OpenVINO (both run QDQ models; each backend gets its own search,
since each has its own int8 kernels).

Per cell: fp32, today's recipe (MinMax, 32 images, the head's decoding in float) and the searched recipe
(engines/int8_choice.py as the engines stage runs it, within --budget seconds: recipes compared by agreement with
fp32 on the selection half of the validation split and unlabelled training images), each with mAP50-95 on the
held-out half of the validation split, img/s at batch 1, and the seconds it took to make.

Goals (issue "INT8 that keeps its accuracy"):
- int8_drop: the searched recipe's drop against fp32 on the same engine, worst cell, <= 0.005 mAP50-95
- int8_speed: the searched recipe's img/s over fp32's, worst cell, >= 1.3x
- recipe_vs_today: on every cell where today's drop is >= 0.005, the searched recipe recovers >= 75% of it
- chosen: the engines stage (default settings and floor; PyTorch, ONNX Runtime and OpenVINO; no bundle ranking)
  picks int8 for the fine-tuned model at the smallest of --sizes (needs --real)

Usage: python scripts/bench_int8.py [--real PATH --pretrained yolov8n.pt] [--sizes 320 640] [--budget 240]
                                    [--work DIR] [--weights W --data CLEAN] [--quick]
(--weights/--data: this detector instead of training the synthetic one; --quick: 128 px, ONNX Runtime, a 10 s
budget, no real data: a smoke run)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_VERBOSE", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from yoloforge.engines.accuracy import accuracy_metric, evaluate, load_split  # noqa: E402
from yoloforge.engines.base import EngineConfig, ModelFacts  # noqa: E402
from yoloforge.engines.export import export_onnx, quantize_int8  # noqa: E402
from yoloforge.engines.harness import time_batches  # noqa: E402
from yoloforge.engines.int8_choice import (  # noqa: E402
    CALIBRATION_POOL,
    calibration_images,
    choose_recipe,
    split_halves,
    unlabelled_images,
)
from yoloforge.engines.predictor import Predictor  # noqa: E402
from yoloforge.engines.quantize import TODAY  # noqa: E402
from yoloforge.engines.registry import load_engine  # noqa: E402

GOAL_DROP = 0.005


def clean_dataset(source: Path, work: Path) -> Path:
    """The dataset as yoloforge's intake leaves it (its clean copy), for a Roboflow export as downloaded."""
    from yoloforge.ray_app.spec import parse_job
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.intake import stage_intake

    spec = parse_job({"name": "int8", "model": "yolov8n.yaml", "data": {"path": str(source)},
                      "runs_dir": str(work / "runs"), "resources": {"dashboard": False}})
    clean = spec.run_dir / "data" / "clean"
    if not (clean / "data.yaml").is_file():
        with contextlib.redirect_stdout(io.StringIO()):
            stage_intake(RunState(spec))
    return clean


def fine_tuned(pretrained: Path, clean: Path, work: Path, epochs: int) -> Path:
    """pretrained fine-tuned `epochs` at 320 px on the clean dataset (kept in work: a rerun reuses it)."""
    from ultralytics import YOLO

    best = work / "finetune" / "tomato" / "weights" / "best.pt"
    if not best.is_file():
        print(f"fine-tuning {pretrained.name} for {epochs} epochs at 320 px on {clean} ...", flush=True)
        YOLO(str(pretrained)).train(data=str(clean / "data.yaml"), epochs=epochs, imgsz=320, batch=16, workers=0,
                                    plots=False, device="cpu", project=str(work / "finetune"), name="tomato",
                                    exist_ok=True, seed=0, verbose=False)
    return best


def synthetic_detector(work: Path) -> tuple[Path, Path]:
    """The suite's synthetic detector, and more of its shapes to measure it on: its own validation split holds 16
    images, 8 a half, where one image moves mAP50-95 by more than the 0.005 goal. The same generator with another
    seed gives 200 validation images (100 a half) and 128 training images to calibrate on."""
    sys.path.insert(0, str(ROOT / "tests"))
    from yoloforge.ray_app.intake.synth import synth_dataset

    from tests.conftest import train_fixture_model

    best = work / "synthetic" / "train" / "detect" / "weights" / "best.pt"
    if not best.is_file():
        print("training the suite's synthetic detector ...", flush=True)
        best, _ = train_fixture_model(work / "synthetic", "detect", epochs=40)
    data = work / "synthetic-eval"
    if not (data / "data.yaml").is_file():
        synth_dataset(data, "detect", n_train=CALIBRATION_POOL, n_val=200, imgsz=128, seed=11)
    return best, data


def sizes_for(name: str, weights: Path, sizes: list[int]) -> list[int]:
    """The synthetic detector's images are as large as it was trained (128 px): scored at 320 or 640 px its shapes
    are 2.5-5x larger than any it learnt, and its fp32 mAP is near 0 (0.0025 at 320, 0 at 640, measured), which
    makes a drop meaningless. It is measured at its own size; the real model at every size asked."""
    if name != "synthetic":
        return sizes
    return [ModelFacts.from_checkpoint(weights).imgsz]


def speed(config: EngineConfig, path: Path, weights: Path, cache: Path, x: np.ndarray) -> float:
    engine = load_engine(config, path, weights, cache, None)
    try:
        return time_batches(lambda: engine.infer(x), 1, min_time_s=2.0).throughput
    finally:
        engine.close()


def accuracy(config: EngineConfig, path: Path, weights: Path, cache: Path, facts: ModelFacts, samples: list) -> float:
    engine = load_engine(config, path, weights, cache, None)
    try:
        return float(evaluate(Predictor(engine, facts), samples)[accuracy_metric(facts.task)])
    finally:
        engine.close()


def cell(name: str, weights: Path, clean: Path, imgsz: int, backend: str, budget: float, models: Path) -> dict:
    """One model at one size on one backend: today's recipe and the searched one (engines/int8_choice.py, as the
    engines stage runs it), each on the held-out half of the validation split."""
    facts = ModelFacts.from_checkpoint(weights, imgsz=imgsz)
    val = load_split(clean, facts.task, "val")
    held_out = split_halves(val)[1]
    pool = calibration_images(clean, facts.task, imgsz, CALIBRATION_POOL)
    fp32 = export_onnx(weights, imgsz, 1, models)
    f32, i8 = EngineConfig(backend, "fp32", 1, imgsz), EngineConfig(backend, "int8", 1, imgsz)
    x = pool[:1]
    row: dict = {"model": name, "imgsz": imgsz, "backend": backend, "val": len(val)}
    row["fp32_ips"] = speed(f32, fp32, weights, models, x)

    started = time.perf_counter()
    today = quantize_int8(fp32, pool, 1, TODAY)
    row["today_s"] = time.perf_counter() - started
    row["today"] = accuracy(i8, today, weights, models, facts, held_out)
    row["today_ips"] = speed(i8, today, weights, models, x)

    choice = choose_recipe(backend, weights, facts, models, pool, val, budget,
                           unlabelled=unlabelled_images(clean, facts.task))
    row["search_s"] = choice.search_s
    row["fp32"], row["searched"] = choice.fp32_heldout, choice.int8_heldout
    row["recipe"] = choice.recipe.describe() + (" (cut short)" if choice.out_of_time else "")
    row["tried"] = choice.tried
    row["searched_ips"] = speed(i8, quantize_int8(fp32, pool, 1, choice.recipe), weights, models, x)
    print(f"  {name} @{imgsz} {backend}: fp32 {row['fp32']:.4f}, today {row['today']:.4f} "
          f"({row['today'] - row['fp32']:+.4f}), searched {row['searched']:.4f} ({row['searched'] - row['fp32']:+.4f})"
          f" [{row['recipe']}; {row['tried']} recipes in {row['search_s']:.0f} s; agreement with fp32 "
          f"{choice.agreement:.4f} (fp32 {choice.agreement_reference:.4f}) on {choice.agreement_images} images; "
          f"selection half: fp32 {choice.fp32_selection:.4f}, searched {choice.int8_selection:.4f}; most sensitive: "
          f"{', '.join(f'{m} {g:+.4f}' for m, g in choice.sensitive) or '-'}]", flush=True)
    return row


def engines_stage_choice(weights: Path, clean: Path, imgsz: int, work: Path) -> tuple[str, str]:
    """What the engines stage chooses for this model at the default floor and int8 budget, on this machine's
    CPU backends: (the chosen key, why each int8 configuration was or was not chosen)."""
    import shutil

    from yoloforge.engines.selection import verdicts
    from yoloforge.ray_app.pipeline import bench_run
    from yoloforge.ray_app.spec import parse_job
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.intake import stage_intake
    from yoloforge.serving.bundle import server_cannot_run

    runs = work / "stage-runs"
    shutil.rmtree(runs, ignore_errors=True)
    # the default engines settings but TensorRT (no GPU here) and the bundle ranking (which ranks the configs that
    # meet the targets by what the Go server delivers; whether int8 meets them is decided before it)
    spec = parse_job({"name": "chosen", "model": "yolov8n.yaml", "data": {"path": str(clean)}, "runs_dir": str(runs),
                      "search": {"imgsz": imgsz}, "resources": {"dashboard": False},
                      "engines": {"backends": ["pytorch", "onnxruntime", "openvino"], "bundle_candidates": 0}})
    with contextlib.redirect_stdout(io.StringIO()):
        stage_intake(RunState(spec))
    (spec.run_dir / "best").mkdir()
    shutil.copy2(weights, spec.run_dir / "best" / "best.pt")
    selection = dict(bench_run(spec.run_dir).record)
    import pyarrow.parquet as pq

    rows = pq.read_table(spec.run_dir / "engines.parquet").to_pylist()
    said = verdicts(rows, selection, cannot_run=server_cannot_run)
    chosen = (selection.get("chosen") or {}).get("key", "none")
    return chosen, "; ".join(f"{r['key']}: {said[r['key']]}" for r in rows if r["precision"] == "int8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, help="a Roboflow YOLO export (the tomato dataset)")
    parser.add_argument("--pretrained", type=Path, help="COCO yolov8n.pt to fine-tune on --real")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--budget", type=float, default=240.0, help="seconds of recipe search per cell")
    parser.add_argument("--work", type=Path, help="keep trained models here (a rerun reuses them)")
    parser.add_argument("--weights", type=Path, help="use this detector instead of the synthetic one (needs --data)")
    parser.add_argument("--data", type=Path, help="its clean dataset folder (with data.yaml)")
    parser.add_argument("--quick", action="store_true", help="128 px, ONNX Runtime, 10 s budget (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.budget, args.real, args.backends = [128], 10.0, None, ["onnxruntime"]
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_int8_"))
    work.mkdir(parents=True, exist_ok=True)

    models: list[tuple[str, Path, Path]] = []
    if args.real:
        if not args.pretrained:
            parser.error("--real needs --pretrained (COCO yolov8n.pt)")
        clean = clean_dataset(args.real, work)
        models.append(("yolov8n-finetuned", fine_tuned(args.pretrained, clean, work, args.epochs), clean))
    weights, data = (args.weights, args.data) if args.weights else synthetic_detector(work)
    models.append(("synthetic", weights, data))

    # a fresh folder for the model files and recipe caches, so every run searches (the weights stay in work)
    cache = Path(tempfile.mkdtemp(prefix="models-", dir=work))
    rows = [cell(name, w, c, size, backend, args.budget, cache / f"{name}-{size}")
            for name, w, c in models for size in sizes_for(name, w, args.sizes) for backend in args.backends]
    stage = None
    if args.real:
        name, weights, clean = models[0]
        print(f"the engines stage on {name} at {min(args.sizes)} px (default settings and floor) ...", flush=True)
        stage = engines_stage_choice(weights, clean, min(args.sizes), work)
        print(f"  chosen: {stage[0]}\n  int8: {stage[1]}", flush=True)

    print()
    print(f"{'model':<18} {'imgsz':>5} {'backend':<12} {'fp32':>7} {'today':>8} {'searched':>8} {'fp32 img/s':>10} "
          f"{'today':>7} {'searched':>8} {'make s':>7}  recipe")
    for r in rows:
        print(f"{r['model']:<18} {r['imgsz']:>5} {r['backend']:<12} {r['fp32']:>7.4f} {r['today'] - r['fp32']:>+8.4f} "
              f"{r['searched'] - r['fp32']:>+8.4f} {r['fp32_ips']:>10.1f} {r['today_ips'] / r['fp32_ips']:>6.2f}x "
              f"{r['searched_ips'] / r['fp32_ips']:>7.2f}x {r['search_s']:>7.0f}  {r['recipe']}")
    print("(drops on the held-out half of each validation split: "
          + ", ".join(sorted({f"{r['model']} {r['val'] // 2} images" for r in rows})) + ")")
    worst_drop = max(r["fp32"] - r["searched"] for r in rows)
    worst_speed = min(r["searched_ips"] / r["fp32_ips"] for r in rows)
    lossy = [r for r in rows if r["fp32"] - r["today"] >= GOAL_DROP]
    recovered = min(((r["searched"] - r["today"]) / (r["fp32"] - r["today"]) for r in lossy), default=1.0)
    print()
    print(f"GOAL int8_drop: {worst_drop:.4f} mAP50-95 worst of {len(rows)} cells (target <= {GOAL_DROP}) "
          f"{'PASS' if worst_drop <= GOAL_DROP else 'FAIL'}")
    print(f"GOAL int8_speed: {worst_speed:.2f}x fp32 worst cell (target >= 1.30x) "
          f"{'PASS' if worst_speed >= 1.3 else 'FAIL'}")
    print(f"GOAL recipe_vs_today: {recovered:.0%} of today's drop recovered, worst of {len(lossy)} cells losing "
          f">= {GOAL_DROP} (target >= 75%) {'PASS' if recovered >= 0.75 else 'FAIL'}")
    if stage is None:
        print("GOAL chosen: not measured without --real (target the engines stage picks int8 for the fine-tuned "
              "model at the default floor) FAIL")
    else:
        picked = "int8" in stage[0]
        print(f"GOAL chosen: the engines stage chose {stage[0]} for the fine-tuned model at the default floor "
              f"(target an int8 configuration) {'PASS' if picked else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
