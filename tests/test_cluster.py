"""Trials on a two-node Ray cluster on loopback (127.0.0.2 and 127.0.0.3), each node with one logical GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from ga.algorithm import GeneticAlgorithm  # noqa: E402
from ga.ray_searcher import GASearcher  # noqa: E402
from ga.space import Gene, SearchSpace  # noqa: E402
from ray_app.trainable import pick_device  # noqa: E402

PORT = 6391
CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}


def ray_cli(*args: str) -> None:
    exe = shutil.which("ray") or str(Path(os.sys.executable).with_name("ray"))
    subprocess.run([exe, *args], check=True, capture_output=True, timeout=180, env={**os.environ, **CLUSTER_ENV})


@pytest.fixture(scope="module")
def two_nodes():
    mp = pytest.MonkeyPatch()
    for k, v in CLUSTER_ENV.items():
        mp.setenv(k, v)
    ray_cli("start", "--head", "--port", str(PORT), "--node-ip-address", "127.0.0.2", "--num-cpus", "2",
            "--num-gpus", "1", "--include-dashboard", "false", "--disable-usage-stats")
    ray_cli("start", "--address", f"127.0.0.2:{PORT}", "--node-ip-address", "127.0.0.3", "--num-cpus", "2",
            "--num-gpus", "1", "--disable-usage-stats")
    here = Path(__file__).resolve().parent  # workers of an existing cluster import this module's trainable
    ray.init(address=f"127.0.0.2:{PORT}", _node_ip_address="127.0.0.2", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}})
    yield
    ray.shutdown()
    ray_cli("stop", "--force")
    mp.undo()


def placement_trainable(config: dict, barrier: str) -> None:
    """Waits until all 8 trials run at once (files in a shared folder count them), then reports where it ran."""
    start = time.time()
    Path(barrier, f"{os.getpid()}-{time.time_ns()}").touch()
    while len(list(Path(barrier).iterdir())) < 8 and time.time() - start < 90:
        time.sleep(0.2)
    tune.report({"fitness": -abs(config["x"] - 0.3), "node_ip": ray.util.get_node_ip_address(),
                 "gpu_ids": ",".join(map(str, ray.get_gpu_ids())), "device": pick_device(ray.get_gpu_ids()),
                 "start": start, "end": time.time()})


def test_quarter_gpu_trials_spread_over_both_nodes_and_pack_four_per_gpu(two_nodes, tmp_path):
    assert sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]) == ["127.0.0.2", "127.0.0.3"]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    ga = GeneticAlgorithm(SearchSpace((Gene("x", "float", 0.0, 1.0),)), pop_size=8, seed=0, max_generations=1)
    grid = tune.Tuner(
        tune.with_resources(tune.with_parameters(placement_trainable, barrier=str(barrier)),
                            {"cpu": 0.25, "gpu": 0.25}),
        tune_config=tune.TuneConfig(search_alg=GASearcher(ga), num_samples=8),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="placement", verbose=0),
    ).fit()
    results = [r.metrics for r in grid]
    assert len(results) == 8 and not grid.errors
    by_node: dict[str, list[dict]] = {}
    for r in results:
        by_node.setdefault(r["node_ip"], []).append(r)
    assert sorted(by_node) == ["127.0.0.2", "127.0.0.3"]
    for trials in by_node.values():
        assert len(trials) == 4 and {t["gpu_ids"] for t in trials} == {"0"}  # four trials share one GPU
        assert max(t["start"] for t in trials) < min(t["end"] for t in trials)  # ... at the same time
    assert {r["device"] for r in results} == {"cpu"}  # logical GPUs without CUDA: the trial falls back to CPU
