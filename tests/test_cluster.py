"""Trials on a two-node Ray cluster on loopback (127.0.0.2 and 127.0.0.3), each node with one logical GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import stop_shared_ray

pytest.importorskip("ray")
pytestmark = pytest.mark.own_ray  # `ray stop --force` below ends every Ray on the machine

PORT = 6391
HERE = Path(__file__).resolve().parent
CLUSTER_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}


def ray_cli(*args: str) -> None:
    exe = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    subprocess.run([exe, *args], check=True, capture_output=True, timeout=180, env=CLUSTER_ENV)


@pytest.fixture(scope="module")
def two_nodes():
    stop_shared_ray()  # a Ray of this process would be ended by `ray stop --force`
    ray_cli("start", "--head", "--port", str(PORT), "--node-ip-address", "127.0.0.2", "--num-cpus", "2",
            "--num-gpus", "1", "--include-dashboard", "false", "--disable-usage-stats")
    try:
        ray_cli("start", "--address", f"127.0.0.2:{PORT}", "--node-ip-address", "127.0.0.3", "--num-cpus", "2",
                "--num-gpus", "1", "--disable-usage-stats")
        yield f"127.0.0.2:{PORT}"
    finally:
        ray_cli("stop", "--force")


@pytest.mark.slow
def test_quarter_gpu_trials_spread_over_both_nodes_and_pack_four_per_gpu(two_nodes):
    out = subprocess.run([sys.executable, str(HERE / "cluster_placement.py"), two_nodes], capture_output=True,
                         text=True, timeout=300, env=CLUSTER_ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["nodes"] == ["127.0.0.2", "127.0.0.3"] and report["errors"] == 0
    results = report["trials"]
    by_node: dict[str, list[dict]] = {}
    for r in results:
        by_node.setdefault(r["node_ip"], []).append(r)
    assert sorted(by_node) == ["127.0.0.2", "127.0.0.3"]
    for trials in by_node.values():
        assert len(trials) == 4 and {t["gpu_ids"] for t in trials} == {"0"}  # four trials share one GPU
        assert max(t["start"] for t in trials) < min(t["end"] for t in trials)  # ... at the same time
    assert {r["device"] for r in results} == {"cpu"}  # logical GPUs without CUDA: the trial falls back to CPU
