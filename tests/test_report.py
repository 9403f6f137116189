"""report.html: one offline page with the dataset, the search, the engines and the selection, rendered by a
real browser (headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from yoloforge.ray_app.report import write_report


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A run directory with every stage's outputs (the values are made up; the page is what is tested)."""
    run = tmp_path / "runs" / "shapes"
    (run / "best").mkdir(parents=True)
    (run / "job.yaml").write_text(yaml.safe_dump({"name": "shapes", "model": "yolo11n.yaml", "task": "detect",
                                                  "targets": {"metrics": {"mAP50": 0.5}, "fps": 100}}))
    (run / "dataset_report.json").write_text(json.dumps({
        "dataset": "/data/shapes", "task": "detect", "names": ["circle", "square"], "ok": True,
        "splits": {"train": {"images_clean": 60, "instances": 120, "backgrounds": 2, "quarantined": 3},
                   "val": {"images_clean": 20, "instances": 41, "backgrounds": 0, "quarantined": 0}},
        "class_counts": {"circle": {"train": {"instances": 70}, "val": {"instances": 20}},
                         "square": {"train": {"instances": 50}, "val": {"instances": 21}}},
        "problems": [{"severity": "warning", "code": "duplicate_image"}]}))
    rng = np.random.default_rng(0)
    trials = [{"trial_id": f"t{i}", "round": "tune", "generation": i // 4, "index": i % 4,
               "status": "ok" if i != 5 else "error", "error": None if i != 5 else "NaN loss",
               "fitness": float(0.1 + 0.05 * i + rng.random() * 0.02) if i != 5 else None,
               "mAP50": float(0.2 + 0.05 * i), "latency_ms": float(20 + rng.random() * 10),
               "train_time_s": 30.0, "hp_optimizer": "AdamW", "hp_lr0": 0.002} for i in range(8)]
    pq.write_table(pa.Table.from_pylist(trials), run / "trials.parquet")
    pq.write_table(pa.Table.from_pylist([trials[7], trials[3]]), run / "pareto.parquet")
    (run / "best" / "metrics.json").write_text(json.dumps(trials[7]))
    engines = [{"key": f"{b}-fp32-b1-128px-cpu", "backend": b, "status": "ok", "throughput": t, "p50_ms": 1000 / t,
                "p99_ms": 1200 / t, "peak_rss_mb": 700.0, "mAP50-95": 0.3, "reason": None}
               for b, t in (("pytorch", 40.0), ("onnxruntime", 120.0), ("openvino", 110.0))]
    engines.append({"key": "tensorrt-fp16-b1-128px-cuda", "backend": "tensorrt", "status": "unavailable",
                    "throughput": None, "reason": "no CUDA GPU here"})
    pq.write_table(pa.Table.from_pylist(engines), run / "engines.parquet")
    (run / "selection.json").write_text(json.dumps({
        "met": True, "chosen": engines[1], "targets": {"fps": 100, "metric": "mAP50-95"},
        "reasoning": ["Chosen, the fastest that meets every target: onnxruntime fp32 batch 1"], "advice": []}))
    (run / "accuracy.json").write_text(json.dumps({
        "engine": "pytorch-fp32-b1-128px-cpu", "split": "val", "images": 20, "names": ["circle", "square"],
        "per_class": {"circle": {"AP50": 0.71, "AP50-95": 0.42, "instances": 20},
                      "square": {"AP50": 0.55, "AP50-95": 0.31, "instances": 21}},
        "confusion": [[17, 2, 1], [1, 18, 3], [2, 1, 0]], "conf": 0.25, "iou": 0.45}))
    (run / "gallery").mkdir()
    Image.fromarray(np.full((40, 90, 3), 200, np.uint8)).save(run / "gallery" / "00.jpg")
    (run / "gallery" / "gallery.json").write_text(json.dumps({"engine": "onnxruntime-fp32-b1-128px-cpu",
                                                              "split": "val", "conf": 0.25, "images": ["00.jpg"]}))
    return run


def test_report_has_every_section_and_marks_the_choices(finished_run):
    page = write_report(finished_run).read_text()
    for heading in ("Summary", "Dataset", "Hyperparameter search", "Inference engines", "Bundle"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("<svg") >= 3  # fitness per generation, Pareto front, engine comparison
    assert '<tr class="chosen"><td>t7</td>' in page  # the chosen trial, highlighted
    assert '<tr class="chosen"><td>onnxruntime-fp32-b1-128px-cpu</td>' in page
    assert "no CUDA GPU here" in page and "NaN loss" in page and "Chosen, the fastest" in page


def test_report_shows_the_detector_at_work_and_its_accuracy_per_class(finished_run):
    page = write_report(finished_run).read_text()
    assert "<h2>The detector at work</h2>" in page and page.count('src="data:image/jpeg;base64,') == 1
    assert "onnxruntime-fp32-b1-128px-cpu at conf 0.25" in page
    assert "<h2>Accuracy per class (best trial)</h2>" in page and "<td>square</td><td>0.55</td>" in page
    assert "Confusion matrix (conf &gt;= 0.25, IoU &gt;= 0.45)" in page or "Confusion matrix (conf" in page


def test_report_is_self_contained(finished_run):
    page = write_report(finished_run).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page loads something from outside"
    assert "<script" not in page


def test_report_of_a_run_that_only_checked_its_data_says_what_has_not_run(finished_run):
    for name in ("trials.parquet", "pareto.parquet", "engines.parquet", "selection.json"):
        (finished_run / name).unlink()
    page = write_report(finished_run).read_text()
    assert "The search has not run." in page and "The engine benchmark has not run." in page


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(finished_run, tmp_path):
    page = write_report(finished_run)
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2600", "--hide-scrollbars"]
    out = subprocess.run([chromium(), *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert shot.is_file(), out.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] >= 2000 and pixels.std() > 10, "the screenshot is blank"
    dom = subprocess.run([chromium(), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert "Hyperparameter search" in dom and "<svg" in dom


def test_a_trial_stopped_early_with_higher_fitness_is_listed_after_the_chosen_with_why(finished_run):
    from yoloforge.ray_app.search.tables import trial_outcomes

    trials = pq.read_table(finished_run / "trials.parquet").to_pylist()
    early = {**trials[0], "trial_id": "t9", "generation": 1, "status": "stopped early", "fitness": 0.99,
             "mAP50": 0.95, "epoch": 3, "epochs": 10}
    rows = [*trials, early]
    best = trials[7]
    outcomes = trial_outcomes(rows, best, {"mAP50": 0.5}, "target")
    rows = [{**r, "outcome": outcomes[r["trial_id"]]} for r in rows]
    pq.write_table(pa.Table.from_pylist(rows), finished_run / "trials.parquet")
    page = write_report(finished_run).read_text()
    assert page.index("<td>t7</td>") < page.index("<td>t9</td>")
    assert "stopped at epoch 3 of 10 when trial" in outcomes["t9"] and "only once it finished" in outcomes["t9"]
    assert outcomes["t7"].startswith("chosen: the highest fitness of the finished trials that meet every target")
    assert html_text(outcomes["t9"]) in page and "failed or stopped early" not in page


def html_text(text: str) -> str:
    import html

    return html.escape(text)


def test_the_engines_table_says_why_each_configuration_was_passed_over(finished_run):
    rows = pq.read_table(finished_run / "engines.parquet").to_pylist()
    int8 = {**rows[1], "key": "onnxruntime-int8-b8-128px-cpu", "precision": "int8", "throughput": 180.0,
            "mAP50-95": 0.28}
    pq.write_table(pa.Table.from_pylist([*rows, int8]), finished_run / "engines.parquet")
    selection = json.loads((finished_run / "selection.json").read_text())
    selection["baseline"] = rows[0]
    (finished_run / "selection.json").write_text(json.dumps(selection))
    page = write_report(finished_run).read_text()
    assert "loses 0.020 mAP50-95 against the baseline, over the 0.01 allowed" in page
    assert "40.0 img/s, below the 100 img/s target" in page  # pytorch, too slow
    assert "chosen: the fastest that meets every target" in page


def test_the_engines_table_shows_rates_and_sizes_to_one_decimal(finished_run):
    page = write_report(finished_run).read_text()
    assert "<td>120.0</td>" in page and "<td>700.0</td>" in page and "<td>8.3</td>" in page
