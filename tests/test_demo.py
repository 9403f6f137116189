"""`yoloforge demo`, as a user runs it: every stage, ending with a bundle that answers. Its own module, so the
longest test of the suite starts first on a worker of its own (tests/conftest.py orders the modules)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.test_cli import _in_tmp, invoke  # noqa: F401  (the CLI tests' working folder and runner)


@pytest.mark.slow
def test_demo_runs_every_stage_and_ends_with_a_bundle_that_answers(tmp_path):
    result = invoke("demo", "--runs-dir", "runs", "--no-dashboard")
    assert result.exit_code == 0, result.output
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
    done = re.search(r"Search done \((\d+) trials, stopped by (\w+)\)", result.output)
    assert done and int(done[1]) == len(trials) and done[2] in ("target", "max_generations")
    assert (done[2] == "target") == any(t["status"] == "ok" and t["mAP50"] >= target for t in trials)
    assert done[2] == "target" or len(trials) == budget  # only the target ends it before its budget
    # the demo ends with a detector that works: 50 epochs of its known-good start reach ~0.66 (margin over 0.5)
    assert json.loads((run_dir / "best" / "metrics.json").read_text())["mAP50"] >= 0.5
    for served in ("Preview", "Bundle"):  # both answer the validation image they are sent, scored against its labels
        found = re.search(served + r" answered \S+: \d+ detections; (\d+) of (\d+) labelled objects found",
                          result.output)
        said = [line for line in result.output.splitlines() if "answered" in line or "chosen" in line.lower()]
        # one image's matches are a training outcome (mAP50 above is the margin): the answer is whole and scored
        assert found and int(found[2]) >= 1 and 0 <= int(found[1]) <= int(found[2]), (served, said)
    engines = pq.read_table(run_dir / "engines.parquet").to_pylist()
    assert {r["backend"] for r in engines if r["status"] == "ok"} == {"pytorch", "onnxruntime", "openvino"}
    selection = json.loads((run_dir / "selection.json").read_text())
    assert selection["baseline"]["backend"] == "pytorch" and (run_dir / "engines.png").is_file()
    assert ("Engine chosen" in result.output) == selection["met"]
    if selection["met"] and selection["deployable"]:  # ranked by what the bundle delivers (Go is installed here)
        assert selection["bundle_ranking"]["measured"] and "RPS through the bundle" in result.output
    assert "Preview answered" in result.output
    bundle = run_dir / "bundle"
    assert (bundle / "bin" / "yoloforge-server").is_file() and (bundle / "docker-compose.yml").is_file()
    assert "Bundle answered" in result.output and "docker compose up" in result.output
    delivered = json.loads((run_dir / "delivered.json").read_text())  # the bundle under load, beside the promise
    assert delivered["rps"] > 0 and delivered["errors"] == 0 and delivered["promised"] > 0
    assert delivered["ratio"] == pytest.approx(delivered["rps"] / delivered["promised"])
    assert "Bundle delivered" in result.output and "delivered by the bundle" in result.output
    assert "target vs achieved" in result.output and "throughput" in result.output  # the summary at the end
    assert list((run_dir / "search").rglob("events.out.tfevents*")), "TensorBoard logs of the trials"
    page = (run_dir / "report.html").read_text()
    assert "Hyperparameter search" in page and "onnxruntime" in page and str(bundle) in page
