"""Bench scripts keep running and keep their contract: a table, then one GOAL line per goal, exit 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOAL = re.compile(r"^GOAL [\w-]+: .+ \(target .+\) (PASS|FAIL)$")


def quick_run(script: str, *args: str, timeout: int = 900) -> tuple[str, list[str]]:
    """Run a bench script's --quick mode: it exits 0 and every GOAL line has the contract's form."""
    out = subprocess.run([sys.executable, f"scripts/{script}", "--quick", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    goals = [line for line in out.stdout.splitlines() if line.startswith("GOAL ")]
    assert all(GOAL.match(g) for g in goals), goals
    return out.stdout, goals


def test_bench_ga_quick_run_prints_goal_lines():
    stdout, goals = quick_run("bench_ga.py", timeout=300)
    assert len(goals) == 4, goals
    assert "ZDT1" in stdout and "optuna TPE" in stdout and "styblinski_tang_6d" in stdout


@pytest.mark.slow
def test_bench_engines_quick_run_prints_goal_lines(detector):
    weights, data = detector  # the suite's trained detector: the script's own training is not what is tested here
    stdout, goals = quick_run("bench_engines.py", "--weights", str(weights), "--data", str(data))
    assert len(goals) == 2, goals
    assert "onnxruntime" in stdout and "openvino" in stdout and "PyTorch eager" in stdout


@pytest.mark.slow
def test_bench_int8_quick_run_prints_goal_lines(detector):
    weights, data = detector  # the suite's trained detector: the script's own training is not what is tested here
    stdout, goals = quick_run("bench_int8.py", "--weights", str(weights), "--data", str(data))
    assert len(goals) == 4, goals
    assert "today" in stdout and "searched" in stdout and "held-out half" in stdout


@pytest.mark.slow
def test_bench_preview_quick_run_prints_goal_lines(served_run):
    # the suite's shared served run (batches 1 and 4): the script's own run building is not what is tested here
    stdout, goals = quick_run("bench_preview.py", "--clients", "1", "8", "--max-batch", "4", "--run", str(served_run))
    assert len(goals) == 4, goals
    assert "engine alone" in stdout and "RPS" in stdout


@pytest.mark.slow
def test_bench_server_quick_run_prints_goal_lines(served_run):
    from tests.services import missing_services

    if missing_services():
        pytest.skip(str(missing_services()))
    # the suite's shared served run (batches 1 and 4): the script's own run building is not what is tested here
    stdout, goals = quick_run("bench_server.py", "--max-batch", "4", "--run", str(served_run))
    assert len(goals) == 6, goals
    assert "engine alone" in stdout and "cached" in stdout and "gateway overhead" in stdout


@pytest.mark.slow
def test_bench_finetune_quick_run_prints_goal_lines(detector):
    weights, data = detector  # the suite's trained detector and its shapes stand in for the real export and weights
    stdout, goals = quick_run("bench_finetune.py", "--weights", str(weights), "--data", str(data))
    assert len(goals) == 5, goals
    assert "model.tune" in stdout
    assert any(g.startswith("GOAL reproduces: yolo train cfg=best/hyp.yaml lands") for g in goals), goals


def test_loadgen_reports_errors_by_status_against_a_closed_port():
    out = subprocess.run([sys.executable, "scripts/loadgen.py", "http://127.0.0.1:9", "--requests", "3",
                          "--concurrency", "2", "--timeout", "2"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "requests 3  ok 0" in out.stdout and "ClientConnectorError: 3" in out.stdout
