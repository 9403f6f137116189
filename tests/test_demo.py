"""`yoloforge demo`, as a user runs it: its own process, every stage, ending with a bundle that answers. Its own
module, so the longest test of the suite starts first on a worker of its own (tests/conftest.py orders the modules).

The demo's process starts Ray actors and loads torch, ONNX Runtime and OpenVINO: its exit, which once crashed after
a finished run (exit 139), must be clean, so the exit status is part of what is checked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
import yoloforge


@pytest.mark.slow
def test_demo_runs_every_stage_and_ends_with_a_bundle_that_answers(tmp_path):
    demo = subprocess.run([sys.executable, "-m", "yoloforge.ray_app.cli", "demo", "--runs-dir", "runs",
                           "--no-dashboard"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=900)
    assert demo.returncode == 0, (demo.returncode, demo.stdout[-3000:], demo.stderr[-3000:])
    assert "Segmentation fault" not in demo.stderr and "Fatal Python error" not in demo.stderr
    output = demo.stdout
    run_dir = tmp_path / "runs" / "demo"
    assert json.loads((run_dir / "dataset_report.json").read_text())["ok"]
    assert json.loads((run_dir / "model.json").read_text())["architecture"] == "yolo11n.yaml"
    import pyarrow.parquet as pq

    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    job = yaml.safe_load((run_dir / "job.yaml").read_text())
    budget, target = job["search"]["population"] * job["search"]["generations"], job["targets"]["metrics"]["mAP50"]
    # a target met early ends the search before its budget, as designed
    assert 1 <= len(trials) <= budget and all(t["status"] in ("ok", "stopped early") for t in trials)
    assert (run_dir / "best" / "best.pt").is_file()
    done = re.search(r"Search done \((\d+) trials, stopped by (\w+)\)", output)
    assert done and int(done[1]) == len(trials) and done[2] in ("target", "max_generations")
    assert (done[2] == "target") == any(t["status"] == "ok" and t["mAP50"] >= target for t in trials)
    assert done[2] == "target" or len(trials) == budget  # only the target ends it before its budget
    # the demo ends with a detector that works: 50 epochs of its known-good start reach ~0.66 (margin over 0.5)
    assert json.loads((run_dir / "best" / "metrics.json").read_text())["mAP50"] >= 0.5
    for served in ("Preview", "Bundle"):  # both answer the validation image they are sent, scored against its labels
        found = re.search(served + r" answered \S+: \d+ detections; (\d+) of (\d+) labelled objects found",
                          output)
        said = [line for line in output.splitlines() if "answered" in line or "chosen" in line.lower()]
        # one image's matches are a training outcome (mAP50 above is the margin): the answer is whole and scored
        assert found and int(found[2]) >= 1 and 0 <= int(found[1]) <= int(found[2]), (served, said)
    engines = pq.read_table(run_dir / "engines.parquet").to_pylist()
    assert {r["backend"] for r in engines if r["status"] == "ok"} == {"pytorch", "onnxruntime", "openvino"}
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["baseline"]["backend"] == "pytorch" and (run_dir / "engines.png").is_file()
    assert ("Engine chosen" in output) == selection["met"]
    if selection["met"] and selection["deployable"]:  # ranked by what the bundle delivers (Go is installed here)
        assert selection["bundle_ranking"]["measured"] and "RPS through the bundle" in output
    assert "Preview answered" in output
    bundle = run_dir / "bundle"
    assert (bundle / "bin" / "yoloforge-server").is_file() and (bundle / "docker-compose.yml").is_file()
    assert "Bundle answered" in output and "docker compose up" in output
    delivered = json.loads((run_dir / "delivered.json").read_text())  # the bundle under load, beside the promise
    assert delivered["rps"] > 0 and delivered["errors"] == 0 and delivered["promised"] > 0
    assert delivered["ratio"] == pytest.approx(delivered["rps"] / delivered["promised"])
    assert delivered["cost_factor"] > 0 and "server cost" in (run_dir / "report.html").read_text()
    assert "yolo train cfg=" in (run_dir / "report.html").read_text()  # how to train the best trial again
    assert yoloforge.open_run(run_dir).delivery.cost_factor == delivered["cost_factor"]  # the Python API says it too
    assert "Bundle delivered" in output and "delivered by the bundle" in output
    assert "target vs achieved" in output and "throughput" in output  # the summary at the end
    assert list((run_dir / "search").rglob("events.out.tfevents*")), "TensorBoard logs of the trials"
    page = (run_dir / "report.html").read_text()
    assert "Hyperparameter search" in page and "onnxruntime" in page and str(bundle) in page
    # int8 was searched on both int8 backends, and the report says whether it was chosen or why fp32 held
    import html

    int8 = selection["int8"]
    assert int8["verdict"].startswith(("int8 chosen", "fp32 held")) and len(int8["recipes"]) == 2
    assert html.escape(int8["verdict"]) in page and all(html.escape(line) in page for line in int8["recipes"])
    assert all(r.get("int8_recipe_text") for r in engines if r["precision"] == "int8" and r["status"] == "ok")
