"""INT8 recipes (engines/quantize.py): the search's choices against brute-force oracles, and real quantisation of the
suite's detector."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from yoloforge.engines.quantize import ENTROPY_MIN_BUDGET_S, METHODS, TODAY, OutOfTime, Recipe, search_recipe

MODULES = [f"model.{i}" for i in range(8)]  # model.7 plays the head


def oracle_score(method_score: dict[str, float], gains: dict[str, float], images_gain: float = 0.0):
    """An accuracy that adds up: the method's, more images', and each float module's own gain."""
    def score(recipe: Recipe, within_s: float | None = None) -> float:
        return (method_score[recipe.method] + (images_gain if recipe.images > 32 else 0.0)
                + sum(gains.get(m, 0.0) for m in recipe.float_modules))
    return score


class Clock:
    """Time that moves only when a recipe is measured: each measurement costs `step` seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def scorer(self, score):  # type: ignore[no-untyped-def]
        def timed(recipe: Recipe, within_s: float | None = None) -> float:
            self.now += self.step
            return score(recipe)
        return timed


def test_the_calibration_method_that_scores_best_is_kept_and_a_tie_keeps_the_earlier():
    result = search_recipe(oracle_score({"minmax": 0.50, "entropy": 0.53, "percentile": 0.53}, {}), MODULES, 0.531,
                           goal=0.005, budget_s=1e9)
    assert result.chosen.method == "percentile" and result.chosen_score == pytest.approx(0.53)
    assert [t.recipe.method for t in result.tried if t.step == "method"] == list(METHODS)


def test_entropy_whose_calibration_cost_is_unbounded_is_tried_only_with_a_large_budget():
    score = oracle_score({"minmax": 0.50, "entropy": 0.60, "percentile": 0.52}, {})
    small = search_recipe(score, MODULES, 0.6, goal=0.005, budget_s=ENTROPY_MIN_BUDGET_S - 1)
    large = search_recipe(score, MODULES, 0.6, goal=0.005, budget_s=ENTROPY_MIN_BUDGET_S)
    assert "entropy" not in {t.recipe.method for t in small.tried} and small.chosen.method == "percentile"
    assert large.chosen.method == "entropy"


def test_more_calibration_images_are_kept_only_where_they_score_better():
    better = search_recipe(oracle_score(dict.fromkeys(METHODS, 0.5), {}, images_gain=0.01), MODULES, 0.505,
                           goal=0.005, budget_s=1e9)
    same = search_recipe(oracle_score(dict.fromkeys(METHODS, 0.5), {}), MODULES, 0.5, goal=0.005, budget_s=1e9)
    assert better.chosen.images == 128 and same.chosen.images == 32


def test_a_recipe_within_the_goal_keeps_every_layer_in_int8():
    result = search_recipe(oracle_score(dict.fromkeys(METHODS, 0.598), {"model.3": 0.01}), MODULES, 0.6,
                           goal=0.005, budget_s=1e9)
    assert result.chosen.float_modules == () and not result.sensitivity


def test_the_fewest_most_sensitive_layers_that_reach_the_goal_go_to_float():
    gains = {"model.1": 0.004, "model.2": 0.012, "model.5": 0.007, "model.6": -0.002}
    reference, goal = 0.60, 0.003
    score = oracle_score(dict.fromkeys(METHODS, 0.58), gains)
    result = search_recipe(score, MODULES, reference, goal=goal, budget_s=1e9)
    # brute force over every subset of the non-head modules: the smallest set within the goal, best score first
    subsets = [s for k in range(len(MODULES)) for s in itertools.combinations(MODULES[:-1], k)]
    within = [s for s in subsets if reference - score(Recipe("minmax", 32, s)) <= goal]
    smallest = min(len(s) for s in within)
    assert len(result.chosen.float_modules) == smallest
    assert reference - result.chosen_score <= goal
    assert set(result.chosen.float_modules) == {"model.2", "model.5"}  # the two largest gains, in graph order
    assert result.chosen.float_modules == ("model.2", "model.5")
    assert "model.7" not in result.sensitivity  # the head's decoding is in float already


def test_layers_that_only_cost_accuracy_never_go_to_float():
    result = search_recipe(oracle_score(dict.fromkeys(METHODS, 0.5), {"model.4": -0.01}), MODULES, 0.6,
                           goal=0.001, budget_s=1e9)
    assert "model.4" not in result.chosen.float_modules
    assert all(t.step != "greedy" or "model.4" not in t.recipe.float_modules for t in result.tried)


def test_a_spent_budget_stops_the_search_with_the_best_recipe_so_far():
    clock = Clock(step=10.0)
    score = oracle_score({"minmax": 0.50, "percentile": 0.52, "entropy": 0.40}, {"model.2": 0.05})
    result = search_recipe(clock.scorer(score), MODULES, 0.6, goal=0.001, budget_s=15.0, clock=clock)
    assert result.out_of_time and len(result.tried) == 2  # at 20 s the budget is spent: nothing after that
    assert result.chosen == Recipe("percentile", 32)


def test_the_first_recipe_is_measured_even_with_no_budget():
    result = search_recipe(oracle_score(dict.fromkeys(METHODS, 0.5), {}), MODULES, 0.6, goal=0.001, budget_s=0.0)
    assert result.chosen == TODAY and len(result.tried) == 1 and result.out_of_time


def test_a_calibration_that_would_overrun_the_budget_is_stopped_at_its_end_and_not_chosen():
    clock = Clock(step=10.0)
    score = oracle_score({"minmax": 0.50, "percentile": 0.60, "entropy": 0.40}, {"model.2": 0.05})
    given: list[float | None] = []

    def slow_percentile(recipe: Recipe, within_s: float | None) -> float:
        """Percentile's calibration would take 100 s: it is stopped when the time it was given is up."""
        given.append(within_s)
        if recipe.method == "percentile":
            assert within_s is not None
            clock.now += within_s
            raise OutOfTime("stopped")
        return clock.scorer(score)(recipe)

    result = search_recipe(slow_percentile, MODULES, 0.6, goal=0.001, budget_s=25.0, clock=clock)
    assert given == [None, 15.0]  # the first recipe is measured whole; the next gets what is left of the budget
    assert clock.now == 25.0 and result.out_of_time  # nothing ran past the budget, nothing after it
    assert result.chosen == TODAY and result.tried[1].stopped and len(result.tried) == 2


def test_a_recipe_says_what_it_is_and_survives_a_round_trip():
    recipe = Recipe("entropy", 128, ("model.2", "model.9", "model.16"))
    assert recipe.describe() == "3 layers in float, entropy, 128 images"
    assert Recipe.from_dict(recipe.as_dict()) == recipe
    assert recipe.tag() != Recipe("entropy", 128, ("model.2",)).tag() and TODAY.tag() == Recipe().tag()


@pytest.mark.slow
def test_a_module_kept_in_float_has_no_quantized_node_and_the_ranges_are_calibrated_once(detector, tmp_path):
    import onnx
    from yoloforge.engines.accuracy import load_split
    from yoloforge.engines.export import export_onnx
    from yoloforge.engines.processing import preprocess
    from yoloforge.engines.quantize import module_names, quantize

    weights, data = detector
    fp32 = export_onnx(weights, 128, 1, tmp_path)
    pool = preprocess([s.image for s in load_split(data, "detect", "train", 16)], 128, "detect")[0]
    modules = module_names(fp32)
    assert modules[0] == "model.0" and len(modules) > 10
    int8 = quantize(fp32, tmp_path / "all.onnx", pool, 1, Recipe("minmax", 16))
    ranges = sorted(tmp_path.glob("*-ranges-minmax-16-*.json"))
    assert len(ranges) == 1
    stamp = ranges[0].stat().st_mtime_ns
    kept = quantize(fp32, tmp_path / "kept.onnx", pool, 1, Recipe("minmax", 16, ("model.2",)))
    assert ranges[0].stat().st_mtime_ns == stamp  # the second recipe reused the first one's calibration

    def int8_weights(path: Path, module: str) -> int:
        """The module's weights stored as int8 (an initializer model.2.<...>_quantized, dequantized for its conv)."""
        return sum(1 for n in onnx.load(str(path)).graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0].startswith(f"{module}."))

    assert int8_weights(int8, "model.2") > 0 and int8_weights(kept, "model.2") == 0
    assert int8_weights(kept, "model.3") == int8_weights(int8, "model.3") > 0  # the other modules as before


@pytest.mark.slow
def test_a_model_exported_again_under_the_same_name_is_calibrated_again(detector, tmp_path):
    import torch
    from ultralytics import YOLO
    from yoloforge.engines.accuracy import load_split
    from yoloforge.engines.export import export_onnx
    from yoloforge.engines.processing import preprocess
    from yoloforge.engines.quantize import quantize

    weights, data = detector
    fp32 = export_onnx(weights, 128, 1, tmp_path / "models")
    pool = preprocess([s.image for s in load_split(data, "detect", "train", 8)], 128, "detect")[0]
    quantize(fp32, tmp_path / "first.onnx", pool, 1, Recipe("minmax", 8))
    (ranges,) = (tmp_path / "models").glob("*-ranges-minmax-8-*.json")
    first = ranges.read_text()
    retrained = YOLO(str(weights))  # a new search's weights: the same network, its first convolution doubled
    with torch.no_grad():
        retrained.model.model[0].conv.weight.mul_(2.0)
    (tmp_path / "new").mkdir()
    retrained.save(str(tmp_path / "new" / weights.name))
    assert export_onnx(tmp_path / "new" / weights.name, 128, 1, tmp_path / "models") == fp32  # the same name
    quantize(fp32, tmp_path / "second.onnx", pool, 1, Recipe("minmax", 8))
    assert ranges.read_text() != first, "the ranges of the model exported before were reused"


@pytest.mark.slow
def test_a_calibration_given_too_little_time_is_stopped_and_leaves_no_file(detector, tmp_path):
    from yoloforge.engines.accuracy import load_split
    from yoloforge.engines.export import export_onnx
    from yoloforge.engines.processing import preprocess
    from yoloforge.engines.quantize import quantize

    weights, data = detector
    fp32 = export_onnx(weights, 128, 1, tmp_path)
    pool = preprocess([s.image for s in load_split(data, "detect", "train", 8)], 128, "detect")[0]
    before = set(tmp_path.iterdir())
    with pytest.raises(OutOfTime):  # 50 ms: less than a Python process takes to import ONNX Runtime
        quantize(fp32, tmp_path / "int8.onnx", pool, 1, Recipe("minmax", 8), within_s=0.05)
    left = {p.name for p in set(tmp_path.iterdir()) - before}
    assert left <= {fp32.stem + "-prep.onnx"}  # no model, no ranges, no calibration images: only the fp32 prep


@pytest.mark.slow
def test_a_calibration_in_time_makes_the_model_and_ranges_it_would_make_in_process(detector, tmp_path):
    from yoloforge.engines.accuracy import load_split
    from yoloforge.engines.export import export_onnx
    from yoloforge.engines.processing import preprocess
    from yoloforge.engines.quantize import quantize

    weights, data = detector
    fp32 = export_onnx(weights, 128, 1, tmp_path)
    pool = preprocess([s.image for s in load_split(data, "detect", "train", 8)], 128, "detect")[0]
    child = quantize(fp32, tmp_path / "child.onnx", pool, 1, Recipe("minmax", 8), within_s=120.0)
    (ranges,) = tmp_path.glob("*-ranges-minmax-8-*.json")
    from_child = json.loads(ranges.read_text())
    ranges.unlink()
    here = quantize(fp32, tmp_path / "here.onnx", pool, 1, Recipe("minmax", 8))
    assert json.loads(ranges.read_text()) == from_child  # the same ranges (in another order: a set's)
    assert child.stat().st_size == here.stat().st_size
    assert not list(tmp_path.glob(".calibration-*")) and not list(tmp_path.glob(".*.json.*"))


def test_the_faster_activation_format_is_kept_only_where_it_scores_within_the_goal():
    def score(drop: float):  # type: ignore[no-untyped-def]
        base = oracle_score(dict.fromkeys(METHODS, 0.6), {})
        return lambda recipe, within_s: base(recipe) - (drop if recipe.activations == "s8" else 0.0)

    kept = search_recipe(score(0.002), MODULES, 0.6, goal=0.003, budget_s=1e9, faster_activations="s8")
    lost = search_recipe(score(0.004), MODULES, 0.6, goal=0.003, budget_s=1e9, faster_activations="s8")
    assert kept.chosen == Recipe("minmax", 32, (), "s8") and kept.tried[-1].step == "activations"
    assert lost.chosen == Recipe("minmax", 32) and lost.tried[-1].recipe.activations == "s8"


def test_the_faster_activation_format_is_tried_even_when_the_budget_is_spent():
    clock = Clock(step=10.0)
    score = oracle_score(dict.fromkeys(METHODS, 0.6), {})
    result = search_recipe(clock.scorer(score), MODULES, 0.6, goal=0.001, budget_s=5.0, clock=clock,
                           faster_activations="s8")
    assert [t.step for t in result.tried] == ["method", "activations"]
    assert result.chosen.activations == "s8"


def test_the_sensitivity_step_leaves_part_of_the_budget_to_put_layers_in_float():
    clock = Clock(step=10.0)
    score = oracle_score(dict.fromkeys(METHODS, 0.5), {"model.0": 0.02, "model.1": 0.01})
    result = search_recipe(clock.scorer(score), MODULES, 0.6, goal=0.001, budget_s=100.0, clock=clock)
    steps = [t.step for t in result.tried]
    # methods (no entropy at this budget) and images took 30 s; sensitivity may use 60% of the 70 s left: it starts
    # no module at 72 s or later
    assert steps.count("sensitivity") == 5
    assert steps.count("greedy") == 2 and result.chosen.float_modules == ("model.0", "model.1")


def test_a_layer_goes_to_float_only_where_it_buys_half_the_goal():
    score = oracle_score(dict.fromkeys(METHODS, 0.5), {"model.1": 0.02, "model.3": 0.001})
    result = search_recipe(score, MODULES, 0.6, goal=0.004, budget_s=1e9)
    assert result.chosen.float_modules == ("model.1",)  # model.3 would add 0.001, under 0.002
