"""ga/: encoding, operators, NSGA-II ranking, and the ask/tell state — as properties over many inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from yoloforge.ga.algorithm import GeneticAlgorithm
from yoloforge.ga.fitness import target_violation, weighted_fitness
from yoloforge.ga.operators import (
    crowding_distance,
    gaussian_mutation,
    non_dominated_sort,
    polynomial_mutation,
    repair_bounds,
    row_keys,
    sbx_crossover,
)
from yoloforge.ga.space import Gene, SearchSpace
from yoloforge.ga.surrogate import SURROGATES, DensityRatio, GaussianProcess
from yoloforge.ray_app.search.hyperparameters import yolo_space

MIXED = SearchSpace((Gene("lr", "log", 1e-5, 1e-1), Gene("m", "float", 0.6, 0.98), Gene("n", "int", 1, 8),
                     Gene("opt", "cat", choices=("SGD", "AdamW", "Adam"))))
unit_pop = arrays(np.float64, st.tuples(st.integers(1, 20), st.just(4)), elements=st.floats(0, 1))


def sphere(configs):
    X = MIXED.encode(configs)
    return ((X - 0.37) ** 2).sum(axis=1)


@given(unit_pop)
def test_decode_encode_round_trip(X):
    configs = MIXED.decode(X)
    again = MIXED.decode(MIXED.encode(configs))
    for before, after in zip(configs, again, strict=True):
        assert after["n"] == before["n"] and after["opt"] == before["opt"]
        assert after["lr"] == pytest.approx(before["lr"]) and after["m"] == pytest.approx(before["m"])


@given(unit_pop)
def test_decoded_values_respect_bounds(X):
    for c in MIXED.decode(X):
        assert 1e-5 <= c["lr"] <= 1e-1 and 0.6 <= c["m"] <= 0.98 and 1 <= c["n"] <= 8
        assert c["opt"] in ("SGD", "AdamW", "Adam")


@given(arrays(np.float64, (8, 5), elements=st.floats(-3, 3)))
def test_repair_keeps_everything_in_unit_box(X):
    Y = repair_bounds(X)
    assert ((Y >= 0) & (Y <= 1)).all()


@given(st.integers(0, 2**32 - 1))
def test_variation_operators_stay_in_unit_box(seed):
    rng = np.random.default_rng(seed)
    P1, P2 = rng.random((16, 6)), rng.random((16, 6))
    c1, c2 = sbx_crossover(rng, P1, P2)
    for Y in (c1, c2, gaussian_mutation(rng, P1, 0.2, 0.3), polynomial_mutation(rng, P1, 0.2)):
        assert ((Y >= 0) & (Y <= 1)).all()


def brute_force_fronts(F):
    n = len(F)
    ranks = np.full(n, -1)
    remaining = set(range(n))
    front = 0
    while remaining:
        current = {i for i in remaining if not any(
            np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in remaining if j != i)}
        for i in current:
            ranks[i] = front
        remaining -= current
        front += 1
    return ranks


@given(arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 3)),
              elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])))
def test_non_dominated_sort_equals_brute_force(F):
    assert non_dominated_sort(F).tolist() == brute_force_fronts(F).tolist()


def per_front_crowding(F, ranks):
    """Textbook NSGA-II crowding distance, one front and one objective at a time."""
    distance = np.zeros(len(F))
    for front in np.unique(ranks):
        idx = np.flatnonzero(ranks == front)
        for j in range(F.shape[1]):
            order = idx[np.argsort(F[idx, j], kind="stable")]
            f = F[order, j]
            span = (f[-1] - f[0]) or 1.0
            distance[order[0]] = distance[order[-1]] = np.inf
            for k in range(1, len(order) - 1):
                distance[order[k]] += (f[k + 1] - f[k - 1]) / span
    return distance


@given(arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 3)), elements=st.floats(0, 1)))
def test_vectorised_crowding_distance_equals_per_front_reference(F):
    ranks = non_dominated_sort(F)
    assert np.allclose(crowding_distance(F, ranks), per_front_crowding(F, ranks))


def test_crowding_distance_gives_boundaries_infinity():
    F = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0], [0.2, 0.8]])
    cd = crowding_distance(F, np.zeros(4, dtype=int))
    assert np.isinf(cd[0]) and np.isinf(cd[2]) and np.isfinite(cd[1])


def test_infeasible_points_rank_after_feasible():
    F = np.array([[0.0], [1.0]])
    ranks = non_dominated_sort(F, cv=np.array([0.5, 0.0]))
    assert ranks.tolist() == [1, 0]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_elitism_never_loses_the_best(seed):
    ga = GeneticAlgorithm(MIXED, pop_size=6, seed=seed)
    best_so_far = np.inf
    for _ in range(6):
        f = sphere(ga.ask())
        best_so_far = min(best_so_far, f.min())
        ga.tell(f)
        assert ga.F[:, 0].min() == best_so_far


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 5), st.floats(-1.0, 1.0))
def test_a_revised_member_holds_its_new_objective_in_the_archive_and_the_population(seed, index, shift):
    # a generation told with provisional results (running trials' latest), one revised when its trial ends
    ga = GeneticAlgorithm(MIXED, pop_size=6, seed=seed)
    first = sphere(ga.ask())
    ga.tell(first)
    final = sphere(ga.ask())
    provisional = final + 0.5
    ga.tell(provisional)
    ga.revise(1, index, [final[index] + shift])
    expected = np.concatenate([first, provisional])
    expected[6 + index] = final[index] + shift
    assert np.array_equal(ga.archive_F[:, 0], expected)
    told = dict(zip(row_keys(ga.archive_X), ga.archive_F[:, 0], strict=True))
    assert [told[k] for k in row_keys(ga.X)] == list(ga.F[:, 0])  # a surviving member carries the new value
    assert list(ga.F[:, 0]) == sorted(ga.F[:, 0]) and ga.best()[1][0] == expected.min()


def test_revising_a_generation_not_told_is_refused():
    ga = GeneticAlgorithm(MIXED, pop_size=4, seed=0)
    ga.tell(sphere(ga.ask()))
    with pytest.raises(ValueError):
        ga.revise(1, 0, [0.0])


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_same_seed_same_run(seed):
    runs = []
    for _ in range(2):
        ga = GeneticAlgorithm(MIXED, pop_size=5, seed=seed)
        asked = []
        for _ in range(4):
            configs = ga.ask()
            asked.append(configs)
            ga.tell(sphere(configs))
        runs.append(asked)
    assert runs[0] == runs[1]


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 4))
def test_save_restore_gives_the_same_run(seed, stop_at):
    reference = GeneticAlgorithm(MIXED, pop_size=5, seed=seed)
    resumed = GeneticAlgorithm(MIXED, pop_size=5, seed=seed)
    ref_asked, res_asked = [], []
    for gen in range(5):
        configs = reference.ask()
        ref_asked.append(configs)
        reference.tell(sphere(configs))
        if gen == stop_at:  # interrupt after asking, before telling: the pending generation must survive
            resumed.ask()
            resumed = GeneticAlgorithm.from_state(json.loads(json.dumps(resumed.state_dict())))
        configs = resumed.ask()
        res_asked.append(configs)
        resumed.tell(sphere(configs))
    assert ref_asked == res_asked


def test_children_never_repeat_evaluated_configs():
    space = SearchSpace((Gene("a", "int", 0, 5), Gene("b", "cat", choices=("x", "y", "z"))))  # 18 configs
    ga = GeneticAlgorithm(space, pop_size=4, seed=0)
    seen = []
    for _ in range(3):
        configs = ga.ask()
        seen += [tuple(c.values()) for c in configs]
        ga.tell(np.arange(len(configs), dtype=float))
    assert len(seen) == len(set(seen))


def test_failed_trials_rank_worst():
    ga = GeneticAlgorithm(MIXED, pop_size=4, seed=0)
    ga.ask()
    ga.tell([np.nan, 0.5, 0.1, 0.3])
    assert np.isinf(ga.F[-1, 0]) and ga.F[0, 0] == 0.1


def test_ga_improves_on_a_quadratic():
    ga = GeneticAlgorithm(MIXED, pop_size=10, seed=3, max_generations=15)
    first = None
    while not ga.stop_reason():
        f = sphere(ga.ask())
        first = f.min() if first is None else first
        ga.tell(f)
    assert ga.stop_reason() == "max_generations"
    assert ga.best()[1][0] < first / 3


def test_target_reached_stops_the_search():
    ga = GeneticAlgorithm(MIXED, pop_size=4, seed=0, max_generations=100)
    ga.set_has_targets()
    ga.ask()
    ga.tell([0.1, 0.2, 0.3, 0.4], cv=[0.0, 0.5, 0.5, 0.5])
    assert ga.stop_reason() == "target"


def test_stagnation_stops_the_search():
    ga = GeneticAlgorithm(MIXED, pop_size=4, seed=0, stagnation=2)
    for _ in range(3):
        ga.ask()
        ga.tell(np.ones(4))
    assert ga.stop_reason() == "stagnation"


def test_time_budget_stops_the_search():
    ga = GeneticAlgorithm(MIXED, pop_size=4, seed=0, time_budget_s=0.0)
    assert ga.stop_reason() == "time_budget"


def test_pareto_mode_returns_a_front():
    ga = GeneticAlgorithm(MIXED, pop_size=8, n_obj=2, seed=0)
    for _ in range(4):
        X = MIXED.encode(ga.ask())
        ga.tell(np.stack([X[:, 0], 1 - np.sqrt(X[:, 0]) + X[:, 1]], axis=1))
    front = ga.archive_F[ga.pareto_front()]
    assert len(front) >= 2 and non_dominated_sort(front).max() == 0


def test_yolo_space_has_the_issue_genes_and_optimizer():
    names = set(yolo_space(include_imgsz=True, include_batch=True).names)
    assert {"lr0", "lrf", "momentum", "weight_decay", "warmup_epochs", "box", "cls", "dfl", "hsv_h", "hsv_s",
            "hsv_v", "degrees", "translate", "scale", "fliplr", "mosaic", "mixup", "imgsz", "batch",
            "optimizer"} <= names


def test_overrides_narrow_fix_and_reject_unknown_genes():
    space = yolo_space().with_overrides({"lr0": {"low": 1e-4, "high": 1e-2}, "mosaic": {"value": 0.0}})
    assert next(g for g in space.genes if g.name == "lr0").low == 1e-4
    assert "mosaic" not in space.names and all(c["mosaic"] == 0.0 for c in space.decode(np.random.rand(3, space.dim)))
    with pytest.raises(ValueError, match="unknown gene 'lr'"):
        yolo_space().with_overrides({"lr": {"low": 0.1}})


def test_weighted_fitness_and_target_violation():
    m = {"mAP50": np.array([0.5, np.nan]), "mAP50-95": np.array([0.3, 0.2])}
    f = weighted_fitness(m, costs={"latency_ms": np.array([10.0, 1.0])}, penalties={"latency_ms": 0.001})
    assert f[0] == pytest.approx(0.05 + 0.27 - 0.01) and f[1] == -np.inf
    cv = target_violation(m, minimums={"mAP50-95": 0.25})
    assert cv[0] == 0 and cv[1] == pytest.approx(0.2)


def test_first_generation_starts_from_the_given_points_then_their_neighbours():
    space = SearchSpace(tuple(Gene(f"x{i}", "float", 0.0, 1.0) for i in range(6)))
    start = {f"x{i}": 0.5 for i in range(6)}
    ga = GeneticAlgorithm(space, pop_size=9, seed=3, initial=[start], warm_fraction=0.5, warm_sigma=0.05)
    X = space.encode(ga.ask())
    assert np.allclose(X[0], 0.5)
    distance = np.abs(X - 0.5).max(axis=1)
    assert (distance[1:5] < 0.3).all()  # four mutants of the starting point
    assert (distance[1:5] > 0).all()
    assert distance[5:].max() > 0.3  # the rest spread over the space


def test_short_trainings_leave_sgd_out_of_the_optimizers():
    from yoloforge.ray_app.search.hyperparameters import for_training_length

    space = for_training_length(yolo_space(), iterations=25 * 4)
    (optimizer,) = [g for g in space.genes if g.name == "optimizer"]
    assert optimizer.choices == ("AdamW", "Adam")


def test_long_trainings_keep_sgd_among_the_optimizers():
    from yoloforge.ray_app.search.hyperparameters import for_training_length

    space = for_training_length(yolo_space(), iterations=300 * 500)
    assert "SGD" in next(g for g in space.genes if g.name == "optimizer").choices


def test_sgd_alone_is_kept_whatever_the_training_length():
    from yoloforge.ray_app.search.hyperparameters import for_training_length

    only_sgd = yolo_space().with_overrides({"optimizer": {"choices": ["SGD"]}})
    space = for_training_length(only_sgd, iterations=10)
    assert next(g for g in space.genes if g.name == "optimizer").choices == ("SGD",)


def test_short_training_starts_screen_learning_rate_and_mosaic_in_a_two_by_two_design():
    from yoloforge.ray_app.search.hyperparameters import short_training_starts

    start = {"lr0": 0.001, "mosaic": 1.0, "box": 7.5}
    variants = short_training_starts(start, "detect")
    assert [(round(v["lr0"], 6), v["mosaic"]) for v in variants] == [(0.003162, 0.0), (0.003162, 1.0), (0.001, 0.0)]
    assert all(v["box"] == 7.5 for v in variants)
    assert all(v["nbs"] == 16 for v in variants)  # a step every 16 images, as the design was measured


def test_short_training_starts_for_classify_only_raise_the_learning_rate():
    from yoloforge.ray_app.search.hyperparameters import short_training_starts

    (variant,) = short_training_starts({"lr0": 0.001, "mosaic": 1.0}, "classify")
    assert variant == {"lr0": pytest.approx(0.003162, abs=1e-6), "mosaic": 1.0, "nbs": 16}


# --- surrogate-assisted breeding ------------------------------------------------------------------------------


def bowl(X):
    return ((X - 0.3) ** 2).sum(axis=1)


@pytest.mark.parametrize("name", sorted(SURROGATES))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_surrogate_ranks_points_near_the_minimum_above_far_ones(name, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((40, 3))
    model = SURROGATES[name]().fit(X, bowl(X))
    near, far = np.full((1, 3), 0.3), np.full((1, 3), 0.95)
    assert model.score(near)[0] > model.score(far)[0]


def test_gaussian_process_mean_interpolates_what_it_saw():
    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    mean, sd = GaussianProcess().fit(X, bowl(X)).predict(X)
    assert np.abs(mean - bowl(X)).max() < 0.05 and (sd >= 0).all()


def test_surrogates_treat_failed_trials_as_the_worst():
    X = np.array([[0.1], [0.5], [0.9]])
    y = np.array([0.0, np.inf, 1.0])  # the middle trial failed
    for model in (GaussianProcess(), DensityRatio()):
        scores = model.fit(X, y).score(X)
        assert np.isfinite(scores).all() and scores[0] == scores.max()


def test_surrogate_trains_the_model_chosen_children_then_a_random_share():
    """The (1 - explore) share is the model's batch, its first pick the pool's best expected improvement (brute
    force: the model refitted on the same observations), then the rest drawn from the others."""
    ga = GeneticAlgorithm(MIXED, pop_size=8, seed=1, surrogate="gp", candidates=16, explore=0.25)
    ga.tell(sphere(ga.ask()))
    children = ga.space.encode(ga.ask())
    assert len(children) == 8 and len({tuple(r) for r in np.round(children, 9)}) == 8
    model = GaussianProcess().fit(ga.archive_X, ga.archive_F[:, 0])
    scores = model.score(children)
    assert scores[0] == pytest.approx(scores.max())
    assert model.choose(children[:6], 6)[0] == 0  # the batch is in the order the model picked it


def believed_batch_by_refitting(model: GaussianProcess, pool: np.ndarray, k: int,
                                pending: np.ndarray | None = None) -> list[int]:
    """The kriging believer the slow way: refit the GP (same length scale and noise) with each pending point, then
    each pick, added as an observation at its predicted mean, then score the pool again."""
    X = model.X.copy()
    z = (model.L @ model.L.T) @ model.alpha  # the standardised observations

    def refit() -> GaussianProcess:
        g = GaussianProcess()
        g.X, g.length, g.noise, g.mean, g.scale, g.best_mean = X, model.length, model.noise, model.mean, \
            model.scale, model.best_mean
        g.L = np.linalg.cholesky(np.exp(-0.5 * ((X[:, None] - X[None]) ** 2).sum(-1) / g.length**2)
                                 + g.noise * np.eye(len(X)))
        g.alpha = np.linalg.solve(g.L.T, np.linalg.solve(g.L, z))
        return g

    for point in [] if pending is None else pending:
        z = np.append(z, (refit().predict(point[None])[0][0] - model.mean) / model.scale)
        X = np.vstack([X, point[None]])
    picked: list[int] = []
    for _ in range(k):
        g = refit()
        scores = g.score(pool)
        scores[picked] = -np.inf
        j = int(np.argmax(scores))
        picked.append(j)
        X = np.vstack([X, pool[j : j + 1]])
        z = np.append(z, (g.predict(pool[j : j + 1])[0][0] - model.mean) / model.scale)
    return picked


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 8))
def test_gaussian_process_batch_equals_refitting_with_each_pick_believed(seed, k):
    rng = np.random.default_rng(seed)
    X = rng.random((20, 3))
    model = GaussianProcess().fit(X, bowl(X) + rng.normal(0, 0.01, 20))
    pool = rng.random((60, 3))
    assert list(model.choose(pool, k)) == believed_batch_by_refitting(model, pool, k)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 4), n_pending=st.integers(1, 4))
def test_gaussian_process_believes_running_trials_before_its_picks(seed, k, n_pending):
    rng = np.random.default_rng(seed)
    X = rng.random((20, 3))
    model = GaussianProcess().fit(X, bowl(X) + rng.normal(0, 0.01, 20))
    pool, pending = rng.random((60, 3)), rng.random((n_pending, 3))
    assert list(model.choose(pool, k, pending=pending)) == believed_batch_by_refitting(model, pool, k, pending)


def test_gaussian_process_batch_spreads_over_two_peaks():
    """Two tight clusters of promising points, one a little better: ranking by expected improvement alone takes
    the better cluster whole; the batch takes from both."""
    X = np.array([[0.1, 0.1], [0.9, 0.9], [0.5, 0.5], [0.1, 0.9], [0.9, 0.1]])
    y = np.array([0.0, 0.05, 1.0, 1.0, 1.0])
    model = GaussianProcess().fit(X, y)
    rng = np.random.default_rng(0)
    pool = np.vstack([0.11 + 0.005 * rng.random((4, 2)), 0.89 - 0.005 * rng.random((4, 2))])
    assert set(np.argsort(-model.score(pool))[:4] // 4) == {0}  # what ranking alone would train
    assert set(model.choose(pool, 4) // 4) == {0, 1}


def test_surrogate_assisted_search_resumes_exactly():
    kwargs = {"pop_size": 5, "seed": 4, "surrogate": "gp", "candidates": 8}
    reference, resumed = GeneticAlgorithm(MIXED, **kwargs), GeneticAlgorithm(MIXED, **kwargs)
    for _ in range(3):
        reference.tell(sphere(reference.ask()))
        resumed.tell(sphere(resumed.ask()))
    resumed = GeneticAlgorithm.from_state(json.loads(json.dumps(resumed.state_dict())))
    assert reference.ask() == resumed.ask()


def ask_one_at_a_time(ga: GeneticAlgorithm) -> list[dict]:
    """The generation's members not asked yet, in order."""
    members = []
    while (asked := ga.ask_next()) is not None:
        assert asked[0] == ga.pop_size - ga.unasked - 1  # each member's index is its place in the generation
        members.append(asked[1])
    return members


@pytest.mark.parametrize("surrogate", [None, "gp"])
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_members_asked_one_at_a_time_before_any_result_are_the_generation_ask_gives(surrogate, seed):
    kwargs = {"pop_size": 6, "seed": seed, "surrogate": surrogate, "candidates": 8}
    batch, one_by_one = GeneticAlgorithm(MIXED, **kwargs), GeneticAlgorithm(MIXED, **kwargs)
    for _ in range(3):
        generation = batch.ask()
        assert ask_one_at_a_time(one_by_one) == generation
        batch.tell(sphere(generation))
        one_by_one.tell(sphere(generation))


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_members_told_one_at_a_time_close_the_generation_as_tell_does(seed):
    kwargs = {"pop_size": 6, "seed": seed, "surrogate": "gp", "candidates": 8}
    batch, one_by_one = GeneticAlgorithm(MIXED, **kwargs), GeneticAlgorithm(MIXED, **kwargs)
    for _ in range(3):
        generation = batch.ask()
        batch.tell(sphere(generation))
        assert one_by_one.ask() == generation
        for index, value in reversed(list(enumerate(sphere(generation)))):  # in any order
            assert one_by_one.generation == batch.generation - 1  # open until its last member is told
            one_by_one.tell_member(index, [value])
        assert one_by_one.state_dict() | {"elapsed_s": 0} == batch.state_dict() | {"elapsed_s": 0}


def test_a_member_asked_after_a_result_is_chosen_on_it():
    """The second member of a generation, asked after the first is told: near the first when the first was very
    good, away from it when it was very bad (same seed, same state otherwise)."""
    for seed in range(5):
        picks = {}
        for first_value in (-10.0, 10.0):
            ga = GeneticAlgorithm(MIXED, pop_size=8, seed=seed, surrogate="gp", candidates=16, explore=0.125)
            ga.tell(sphere(ga.ask()))
            (index, first) = ga.ask_next()  # type: ignore[misc]
            ga.tell_member(index, [first_value])
            second = ga.ask_next()[1]  # type: ignore[index]
            picks[first_value] = np.abs(ga.space.encode([second]) - ga.space.encode([first])).sum()
        assert picks[-10.0] < picks[10.0], seed


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), asked=st.integers(1, 6), told=st.integers(0, 6))
def test_a_search_saved_mid_generation_resumes_exactly(seed, asked, told):
    kwargs = {"pop_size": 6, "seed": seed, "surrogate": "gp", "candidates": 8}
    reference, resumed = GeneticAlgorithm(MIXED, **kwargs), GeneticAlgorithm(MIXED, **kwargs)
    for ga in (reference, resumed):
        ga.tell(sphere(ga.ask()))
        members = [ga.ask_next()[1] for _ in range(asked)]  # type: ignore[index]
        for index, value in list(enumerate(sphere(members)))[: min(told, asked)]:
            ga.tell_member(index, [value])
    resumed = GeneticAlgorithm.from_state(json.loads(json.dumps(resumed.state_dict())))
    assert ask_one_at_a_time(reference) == ask_one_at_a_time(resumed)


def test_surrogate_assisted_search_beats_the_plain_ga_on_a_quadratic_over_seeds():
    def best_after(surrogate, seed):
        ga = GeneticAlgorithm(MIXED, pop_size=6, seed=seed, surrogate=surrogate, candidates=16, explore=0.125)
        for _ in range(6):
            ga.tell(sphere(ga.ask()))
        return ga.best()[1][0]

    plain = np.median([best_after(None, s) for s in range(8)])
    assisted = np.median([best_after("gp", s) for s in range(8)])
    assert assisted < plain


def test_unknown_surrogate_is_refused_at_once():
    with pytest.raises(ValueError, match="unknown surrogate"):
        GeneticAlgorithm(MIXED, surrogate="forest")
