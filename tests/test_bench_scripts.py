"""Bench scripts keep running and keep their contract: a table, then one GOAL line per goal, exit 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = re.compile(r"^GOAL [\w-]+: .+ \(target .+\) (PASS|FAIL)$")


def test_bench_ga_quick_run_prints_goal_lines():
    out = subprocess.run([sys.executable, "scripts/bench_ga.py", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    goals = [line for line in out.stdout.splitlines() if line.startswith("GOAL ")]
    assert len(goals) == 3 and all(GOAL.match(g) for g in goals), goals
    assert "ZDT1" in out.stdout and "optuna TPE" in out.stdout


def test_bench_engines_quick_run_prints_goal_lines():
    out = subprocess.run([sys.executable, "scripts/bench_engines.py", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    goals = [line for line in out.stdout.splitlines() if line.startswith("GOAL ")]
    assert len(goals) == 2 and all(GOAL.match(g) for g in goals), goals
    assert "onnxruntime" in out.stdout and "openvino" in out.stdout and "PyTorch eager" in out.stdout


def test_bench_preview_quick_run_prints_goal_lines():
    out = subprocess.run([sys.executable, "scripts/bench_preview.py", "--quick", "--clients", "1", "8"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    goals = [line for line in out.stdout.splitlines() if line.startswith("GOAL ")]
    assert len(goals) == 4 and all(GOAL.match(g) for g in goals), goals
    assert "engine alone" in out.stdout and "RPS" in out.stdout


def test_bench_server_quick_run_prints_goal_lines():
    from tests.services import missing_services

    if missing_services():
        import pytest

        pytest.skip(str(missing_services()))
    out = subprocess.run([sys.executable, "scripts/bench_server.py", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    goals = [line for line in out.stdout.splitlines() if line.startswith("GOAL ")]
    assert len(goals) == 6 and all(GOAL.match(g) for g in goals), goals
    assert "engine alone" in out.stdout and "cached" in out.stdout and "gateway overhead" in out.stdout


def test_loadgen_reports_errors_by_status_against_a_closed_port():
    out = subprocess.run([sys.executable, "scripts/loadgen.py", "http://127.0.0.1:9", "--requests", "3",
                          "--concurrency", "2", "--timeout", "2"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "requests 3  ok 0" in out.stdout and "ClientConnectorError: 3" in out.stdout
