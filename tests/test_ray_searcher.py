"""The GA searcher driving real Ray Tune: generations, concurrency, failures, and restore after interruption."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402
from yoloforge.ga.algorithm import GeneticAlgorithm  # noqa: E402
from yoloforge.ga.space import Gene, SearchSpace  # noqa: E402
from yoloforge.ray_app.search.ray_searcher import GASearcher  # noqa: E402

from tests.conftest import stop_shared_ray  # noqa: E402

SPACE = SearchSpace((Gene("x", "float", -2.0, 2.0), Gene("y", "log", 1e-3, 1.0), Gene("opt", "cat",
                                                                                          choices=("a", "b"))))


pytestmark = pytest.mark.own_ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    stop_shared_ray()  # four logical CPUs: four trials at once
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def make_trainable(log: Path, crash_above: float | None = 1.9):
    def trainable(config: dict) -> None:
        start = time.time()
        time.sleep(0.3)
        if crash_above is not None and config["x"] > crash_above:  # an unlucky region crashes, as an OOM would
            raise RuntimeError("simulated crash")
        fitness = -(config["x"] - 0.5) ** 2 - abs(np.log10(config["y"]) + 1) - (config["opt"] == "b") * 0.1
        with log.open("a") as f:
            f.write(json.dumps({"x": config["x"], "y": config["y"], "start": start, "end": time.time()}) + "\n")
        tune.report({"fitness": fitness})

    return trainable


def run_tuner(trainable, searcher: GASearcher, storage: Path, callbacks=(), num_samples: int = -1) -> tune.ResultGrid:
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=num_samples, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage), name="exp", callbacks=list(callbacks), verbose=0),
    )
    return tuner.fit()


def read_log(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def max_overlap(rows: list[dict]) -> int:
    events = sorted([(r["start"], 1) for r in rows] + [(r["end"], -1) for r in rows], key=lambda e: (e[0], e[1]))
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    return peak


def test_two_generations_of_four_run_through_the_searcher_within_concurrency(tmp_path):
    log = tmp_path / "log.jsonl"
    ga = GeneticAlgorithm(SPACE, pop_size=4, seed=0, max_generations=2)
    searcher = GASearcher(ga, max_concurrent=2)
    results = run_tuner(make_trainable(log), searcher, tmp_path / "storage")
    rows = read_log(log)
    assert len(results) == 8 and searcher.ga.generation == 2
    assert max_overlap(rows) <= 2
    assert [h["generation"] for h in searcher.history] == [0] * 4 + [1] * 4
    assert len({(r["x"], r["y"]) for r in rows}) == len(rows)  # no config evaluated twice


def test_crashed_trial_gets_the_worst_fitness_and_the_search_goes_on(tmp_path):
    log = tmp_path / "log.jsonl"
    ga = GeneticAlgorithm(SPACE, pop_size=2, seed=0, max_generations=2,
                          initial=[{"x": 1.99, "y": 0.1, "opt": "a"}])  # the first config crashes
    searcher = GASearcher(ga, max_concurrent=2)
    run_tuner(make_trainable(log), searcher, tmp_path / "storage")
    crashed = [h for h in searcher.history if h["status"] == "error"]
    assert crashed and crashed[0]["config"]["x"] == pytest.approx(1.99)
    assert all(h["config"]["x"] > 1.9 for h in crashed) and len(searcher.history) == 4
    assert np.isinf(searcher.ga.archive_F[0, 0]) and searcher.ga.generation == 2


def test_each_member_is_chosen_when_its_trial_starts_on_every_result_before_it():
    """Two at a time, as Tune asks: a trial's config is the GA's next member, asked after every result the searcher
    has had, this generation's included: a twin GA told the same results in the same order asks the same members,
    and waits where the searcher waits (a generation's members all running)."""
    kwargs = {"pop_size": 4, "seed": 3, "surrogate": "gp", "candidates": 8}
    searcher, twin = GASearcher(GeneticAlgorithm(SPACE, **kwargs), max_concurrent=2), GeneticAlgorithm(SPACE, **kwargs)
    running: dict[str, tuple[int, dict]] = {}
    for step in range(14):
        while len(running) < 2:
            trial_id = f"t{step}-{len(running)}"
            config, twin_next = searcher.suggest(trial_id), twin.ask_next()
            if config is None:
                assert twin_next is None
                break
            assert twin_next is not None and config == twin_next[1]
            running[trial_id] = (twin_next[0], config)
        oldest = next(iter(running))
        index, config = running.pop(oldest)
        fitness = -float(((SPACE.encode([config]) - 0.3) ** 2).sum())
        searcher.on_trial_complete(oldest, {"fitness": fitness})
        twin.tell_member(index, [-fitness])
    assert searcher.ga.generation == twin.generation >= 3
    assert np.array_equal(searcher.ga.archive_X, twin.archive_X)


def provisional_searcher(provisional_from: tuple[str, float] | None) -> tuple[GASearcher, dict, dict]:
    """A generation of two: trial a stopped at the rung (epoch 2), trial b still running after reporting at it."""
    searcher = GASearcher(GeneticAlgorithm(SPACE, pop_size=2, seed=0, max_generations=3),
                          provisional_from=provisional_from)
    a, b = searcher.suggest("a"), searcher.suggest("b")
    searcher.on_trial_complete("a", {"fitness": -1.0, "epoch": 2})
    searcher.on_trial_result("b", {"fitness": -3.0, "epoch": 1})
    return searcher, a, b


def test_under_multi_fidelity_the_next_generation_waits_for_running_members_to_pass_the_first_rung():
    searcher, _, _ = provisional_searcher(("epoch", 2))
    assert searcher.suggest("c") is None and searcher.ga.generation == 0


def test_under_multi_fidelity_the_next_generation_starts_once_every_running_member_passed_the_first_rung():
    searcher, _, b = provisional_searcher(("epoch", 2))
    searcher.on_trial_result("b", {"fitness": -2.0, "epoch": 2})
    assert isinstance(searcher.suggest("c"), dict) and searcher.ga.generation == 1
    searcher.on_trial_complete("b", {"fitness": -0.5, "epoch": 9})  # its final result revises the GA
    assert sorted(searcher.ga.archive_F[:, 0]) == [0.5, 1.0]
    assert searcher.ga.best()[0] == pytest.approx(b)
    assert [(h["trial_id"], h["generation"], h["metrics"]["fitness"]) for h in searcher.history] == [
        ("a", 0, -1.0), ("b", 0, -0.5)]


def test_without_multi_fidelity_a_running_member_is_always_waited_for():
    searcher, _, _ = provisional_searcher(None)
    searcher.on_trial_result("b", {"fitness": -2.0, "epoch": 2})
    assert searcher.suggest("c") is None and searcher.ga.generation == 0


def test_a_provisionally_told_trial_survives_save_and_restore_and_is_revised_after(tmp_path):
    searcher, _, _ = provisional_searcher(("epoch", 2))
    searcher.on_trial_result("b", {"fitness": -2.0, "epoch": 2})
    searcher.suggest("c")
    searcher.save(str(tmp_path / "state.json"))
    restored = GASearcher(GeneticAlgorithm(SPACE, pop_size=2))
    restored.restore(str(tmp_path / "state.json"))
    restored.on_trial_complete("b", {"fitness": -0.5, "epoch": 9})
    assert sorted(restored.ga.archive_F[:, 0]) == [0.5, 1.0] and len(restored.history) == 2


def epoch_trainable(log: Path, epochs: int = 6):
    """Reports a fitness every epoch that grows towards the config's own (so ASHA has something to rank)."""
    def trainable(config: dict) -> None:
        final = -(config["x"] - 0.5) ** 2 - abs(np.log10(config["y"]) + 1)
        for epoch in range(1, epochs + 1):
            time.sleep(0.2)
            tune.report({"fitness": final - (epochs - epoch) * 0.1, "epoch": epoch})
        with log.open("a") as f:
            f.write(json.dumps({"x": config["x"], "y": config["y"], "fitness": final}) + "\n")

    return trainable


def test_a_search_under_asha_tells_the_ga_every_trial_s_last_report(tmp_path):
    from ray.tune.schedulers import ASHAScheduler

    searcher = GASearcher(GeneticAlgorithm(SPACE, pop_size=4, seed=2, max_generations=3),
                          provisional_from=("epoch", 2))
    reports = {}

    class LastReport(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            reports[trial.trial_id] = result["fitness"]

    tune.Tuner(
        tune.with_resources(epoch_trainable(tmp_path / "log.jsonl"), {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=12, reuse_actors=True, scheduler=ASHAScheduler(
            time_attr="epoch", metric="fitness", mode="max", max_t=5, grace_period=2, reduction_factor=2,
            brackets=1, stop_last_trials=False)),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "storage"), name="exp", verbose=0,
                                  callbacks=[LastReport()]),
    ).fit()
    assert searcher.ga.stop_reason() == "max_generations" and len(searcher.history) == 12
    told = {h["trial_id"]: h["metrics"]["fitness"] for h in searcher.history}
    assert told == reports  # stopped, finished or told early: each trial's last report is what the GA holds
    assert sorted(-searcher.ga.archive_F[:, 0]) == sorted(reports.values())


class InterruptAfter(tune.Callback):
    """Sends the driver SIGINT (as Ctrl-C would) after n trials completed, once: the marker file survives the
    pickling of callbacks into the experiment state, so the restored run is not interrupted again."""

    def __init__(self, n: int, marker: Path) -> None:
        self.n, self.done, self.marker = n, 0, marker

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        if self.done == self.n and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGINT)


def test_restore_after_interruption_does_not_rerun_finished_trials(tmp_path):
    log = tmp_path / "log.jsonl"
    trainable = make_trainable(log, crash_above=None)
    ga = GeneticAlgorithm(SPACE, pop_size=2, seed=1, max_generations=2)
    first = run_tuner(trainable, GASearcher(ga, max_concurrent=2), tmp_path / "storage",
                      [InterruptAfter(1, tmp_path / "interrupted")])
    # what Tune recorded as finished; a trial that ended in the instant of the interrupt may legitimately re-run
    finished = {(r.config["x"], r.config["y"]) for r in first if r.metrics and "fitness" in r.metrics}
    assert 1 <= len(finished) < 4
    restored = tune.Tuner.restore(str(tmp_path / "storage" / "exp"),
                                  trainable=tune.with_resources(trainable, {"cpu": 1}))
    results = restored.fit()
    keys = [(r["x"], r["y"]) for r in read_log(log)]
    assert all(keys.count(k) == 1 for k in finished)  # finished trials were not run again
    assert len(set(keys)) == 4 and len(results) == 4  # and the search completed both generations


def interrupted_search(tmp_path: Path, after: int, max_concurrent: int) -> tuple[Path, dict]:
    """A search of two generations of two, with Tune's bound on trials as run_round sets it, interrupted after
    `after` trials completed; returns its experiment folder and Tune's trials as Tune recorded them."""
    from yoloforge.ray_app.search.tune_state import tune_results

    ga = GeneticAlgorithm(SPACE, pop_size=2, seed=1, max_generations=2)
    run_tuner(make_trainable(tmp_path / "log.jsonl", crash_above=None), GASearcher(ga, max_concurrent=max_concurrent),
              tmp_path / "storage", [InterruptAfter(after, tmp_path / "interrupted")], num_samples=4)
    experiment = tmp_path / "storage" / "exp"
    return experiment, tune_results(experiment)


def restore_and_read_searcher(tmp_path: Path, experiment: Path) -> GASearcher:
    """reconcile, Tune's restore to the end, then the searcher as Tune last saved it."""
    from yoloforge.ray_app.search.tune_state import reconcile, searcher_state_file

    reconcile(experiment)
    tune.Tuner.restore(str(experiment), trainable=tune.with_resources(
        make_trainable(tmp_path / "log.jsonl", crash_above=None), {"cpu": 1})).fit()
    searcher = GASearcher(GeneticAlgorithm(SPACE, pop_size=2))
    searcher.restore(str(searcher_state_file(experiment)))
    return searcher


def test_a_searcher_state_older_than_tunes_trial_list_is_completed_from_it_on_restore(tmp_path):
    # the kill that left it: Tune copies its state files into the run one at a time, and the searcher's copy was
    # from before it suggested the second generation while Tune's trial list already held it
    from yoloforge.ray_app.search.tune_state import searcher_state_file

    experiment, trials = interrupted_search(tmp_path, after=3, max_concurrent=2)
    older = GASearcher(GeneticAlgorithm(SPACE, pop_size=2, seed=1, max_generations=2))
    first_generation = sorted(trials, key=lambda t: trials[t]["number"])[:2]
    for trial_id in first_generation:
        assert older.suggest(trial_id) == pytest.approx(trials[trial_id]["config"])
        older.on_trial_complete(trial_id, trials[trial_id]["metrics"])
    older.save(str(searcher_state_file(experiment)))
    finished = {(t["config"]["x"], t["config"]["y"]) for t in trials.values() if "fitness" in t["metrics"]}

    searcher = restore_and_read_searcher(tmp_path, experiment)
    assert searcher.ga.stop_reason() == "max_generations"  # without reconciling: stuck in generation 1, forever
    assert sorted(h["trial_id"] for h in searcher.history) == sorted(trials)  # no trial beyond Tune's four
    keys = [(r["x"], r["y"]) for r in read_log(tmp_path / "log.jsonl")]
    assert all(keys.count(k) == 1 for k in finished) and len(set(keys)) == 4


@pytest.mark.timeout(240)  # the state this repairs left Tune waiting forever
def test_a_trial_the_searcher_handed_out_but_tune_never_recorded_is_handed_out_again(tmp_path):
    # the other order: the searcher's and the generator's copies are newer than Tune's trial list
    import ray.cloudpickle as cloudpickle
    from yoloforge.ray_app.search.tune_state import searcher_state_file

    experiment, _ = interrupted_search(tmp_path, after=2, max_concurrent=1)
    state_file = searcher_state_file(experiment)
    newer = GASearcher(GeneticAlgorithm(SPACE, pop_size=2))
    newer.restore(str(state_file))
    assert isinstance(newer.suggest("ghost"), dict)
    newer.save(str(state_file))
    generator = sorted(experiment.glob("search_gen_state-*.json"))[-1]
    generator_state = cloudpickle.loads(generator.read_bytes())
    generator.write_bytes(cloudpickle.dumps({**generator_state, "counter": generator_state["counter"] + 1}))

    searcher = restore_and_read_searcher(tmp_path, experiment)
    assert searcher.ga.stop_reason() == "max_generations"
    assert "ghost" not in {h["trial_id"] for h in searcher.history} and len(searcher.history) == 4
    assert len({(r["x"], r["y"]) for r in read_log(tmp_path / "log.jsonl")}) == 4


def test_a_search_pickled_before_the_adapter_left_ga_still_unpickles():
    import pickle

    from yoloforge.ray_app.search.tune_io import accept_moved_modules

    old = pickle.dumps(GASearcher, protocol=0).replace(b"yoloforge.ray_app.search.ray_searcher",
                                                       b"yoloforge.ga.ray_searcher")
    accept_moved_modules()
    assert pickle.loads(old) is GASearcher
