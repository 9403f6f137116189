"""Trials on a two-node Ray cluster on loopback (127.0.0.2 and 127.0.0.3), each node with one logical GPU."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import stop_shared_ray

pytest.importorskip("ray")
pytestmark = pytest.mark.own_ray

PORT = 6391
HERE = Path(__file__).resolve().parent
CLUSTER_ENV = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_AUTH_MODE": "disabled",
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
               "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
NODES = ("127.0.0.2", "127.0.0.3")


def ray_cli(*args: str) -> None:
    exe = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    subprocess.run([exe, *args], check=True, capture_output=True, timeout=180, env=CLUSTER_ENV)


@pytest.fixture(scope="module")
def two_nodes():
    stop_shared_ray()  # four logical GPUs' worth of trials: nothing else of this process's Ray competes
    ray_cli("start", "--head", "--port", str(PORT), "--node-ip-address", "127.0.0.2", "--num-cpus", "2",
            "--num-gpus", "1", "--include-dashboard", "false", "--disable-usage-stats")
    try:
        ray_cli("start", "--address", f"127.0.0.2:{PORT}", "--node-ip-address", "127.0.0.3", "--num-cpus", "2",
                "--num-gpus", "1", "--disable-usage-stats")
        yield f"127.0.0.2:{PORT}"
    finally:
        stop_nodes()


def stop_nodes() -> None:
    """End this cluster's processes only: `ray stop` would end every Ray on the machine (another test worker's, the
    suite's shared one)."""
    import psutil

    ours = [p for p in psutil.process_iter(["cmdline"])
            if any(ip in arg for arg in (p.info["cmdline"] or []) for ip in NODES)]
    for process in ours:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(ours, timeout=30)
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # what `ray start` wrote, ours
    if current.is_file() and current.read_text().startswith(NODES[0]):
        current.unlink(missing_ok=True)


@pytest.mark.slow
def test_quarter_gpu_trials_spread_over_both_nodes_and_pack_four_per_gpu(two_nodes):
    out = subprocess.run([sys.executable, str(HERE / "cluster_placement.py"), two_nodes], capture_output=True,
                         text=True, timeout=300, env=CLUSTER_ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    marked = [line for line in out.stdout.splitlines() if line.startswith("PLACEMENT ")]
    assert len(marked) == 1, (out.stdout[-3000:], out.stderr[-3000:])
    report = json.loads(marked[0].removeprefix("PLACEMENT "))
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
