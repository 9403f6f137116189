"""Run by tests/test_cluster.py in a fresh interpreter (no Ray state left by other tests): joins the two-node
cluster, runs 8 quarter-GPU trials through the GA searcher, prints where each ran on one line marked PLACEMENT."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import ray
from ray import tune
from yoloforge.ga.algorithm import GeneticAlgorithm
from yoloforge.ga.space import Gene, SearchSpace
from yoloforge.ray_app.search.ray_searcher import GASearcher
from yoloforge.ray_app.search.trainable import pick_device

REPORT = "PLACEMENT "


def placement_trainable(config: dict, barrier: str) -> None:
    """Waits until all 8 trials run at once (files in a shared folder count them), then reports where it ran."""
    start = time.time()
    Path(barrier, f"{os.getpid()}-{time.time_ns()}").touch()
    while len(list(Path(barrier).iterdir())) < 8 and time.time() - start < 90:
        time.sleep(0.2)
    tune.report({"fitness": -abs(config["x"] - 0.3), "node_ip": ray.util.get_node_ip_address(),
                 "gpu_ids": ",".join(map(str, ray.get_gpu_ids())), "device": pick_device(ray.get_gpu_ids()),
                 "start": start, "end": time.time()})


def main(address: str) -> None:
    here = Path(__file__).resolve().parent  # workers of an existing cluster import this module's trainable
    ray.init(address=address, _node_ip_address=address.split(":")[0], log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}})
    nodes = sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])
    work = Path(tempfile.mkdtemp())
    (work / "barrier").mkdir()
    ga = GeneticAlgorithm(SearchSpace((Gene("x", "float", 0.0, 1.0),)), pop_size=8, seed=0, max_generations=1)
    grid = tune.Tuner(
        tune.with_resources(tune.with_parameters(placement_trainable, barrier=str(work / "barrier")),
                            {"cpu": 0.25, "gpu": 0.25}),
        tune_config=tune.TuneConfig(search_alg=GASearcher(ga), num_samples=8),
        run_config=tune.RunConfig(storage_path=str(work), name="placement", verbose=0),
    ).fit()
    # marked: Ray's own lines (a worker's message at disconnect) may reach stdout after it
    print(REPORT + json.dumps({"nodes": nodes, "errors": len(grid.errors), "trials": [r.metrics for r in grid]}),
          flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
