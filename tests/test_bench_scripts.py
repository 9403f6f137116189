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
