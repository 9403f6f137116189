"""The search's plan: population and generations fitted to search.time_budget_min, stated before it starts."""

from __future__ import annotations

import pytest
from yoloforge.ray_app.search.plan import MIN_GENERATIONS, expected_epoch_share, plan_search
from yoloforge.ray_app.spec import parse_job


def spec(**search):
    return parse_job({"data": "ds", "search": {"epochs": 10, **search}})


def simulated_share(epochs: int, rungs: list[int], reduction: int, trials: int) -> float:
    """Brute force: `trials` trials, of which each rung keeps exactly 1/reduction of those reaching it."""
    reaching, trained = trials, 0
    bounds = [0, *rungs, epochs]
    for k in range(len(bounds) - 1):
        trained += reaching * (bounds[k + 1] - bounds[k])
        reaching //= reduction
    return trained / (trials * epochs)


@pytest.mark.parametrize(("epochs", "rungs", "reduction"),
                         [(9, [1, 3], 3), (10, [1, 3, 9], 3), (50, [5, 10, 20, 40], 2), (4, [3], 3), (10, [], 3)])
def test_the_share_of_epochs_asha_leaves_matches_counting_trials_rung_by_rung(epochs, rungs, reduction):
    assert expected_epoch_share(epochs, rungs, reduction) == pytest.approx(
        simulated_share(epochs, rungs, reduction, reduction ** 6))


def test_without_a_time_budget_the_plan_is_the_jobs_population_and_generations():
    plan = plan_search(spec(population=6, generations=4), concurrent=2, trial_s=60.0)
    assert (plan.population, plan.generations) == (6, 4)


def test_a_budget_fits_the_generations_to_it_and_keeps_a_population_the_job_names():
    plan = plan_search(spec(population=4, time_budget_min=10), concurrent=2, trial_s=60.0)
    assert plan.population == 4
    assert plan.trials * plan.trial_s <= 10 * 60 * 2  # what the trials take, two at a time, fits the budget
    assert plan.trials + plan.population > 10 * 2  # and one more generation would not


def test_a_budget_chooses_a_population_that_leaves_the_ga_generations_to_evolve():
    plan = plan_search(spec(time_budget_min=6), concurrent=1, trial_s=30.0)  # 12 trials fit
    assert plan.generations >= MIN_GENERATIONS and plan.population >= 2 and plan.trials <= 12


def test_generations_the_job_names_are_an_upper_bound_within_a_large_budget():
    plan = plan_search(spec(population=4, generations=3, time_budget_min=600), concurrent=2, trial_s=60.0)
    assert (plan.population, plan.generations) == (4, 3)


def test_stopping_weak_trials_early_fits_more_trials_in_the_same_budget():
    full = plan_search(spec(population=4, time_budget_min=30), concurrent=2, trial_s=60.0)
    rungs = [1, 3, 9]
    early = plan_search(spec(population=4, time_budget_min=30, fidelity={"min_epochs": 1}), concurrent=2,
                        trial_s=60.0, rungs=rungs)
    assert early.trials > full.trials
    assert early.epoch_share == pytest.approx(expected_epoch_share(10, rungs, 3))


def test_the_plan_says_its_budget_a_trials_time_and_how_many_trials_fit():
    plan = plan_search(spec(population=4, time_budget_min=10), concurrent=2, trial_s=90.0)
    text = plan.describe(10, [])
    assert "planned for 10 min" in text and "1.5 min" in text and f"about {plan.trials} trials" in text
    assert "2 at a time" in text


def test_without_a_trial_estimate_the_plan_says_only_the_budget_stops_the_search():
    plan = plan_search(spec(population=4, generations=5, time_budget_min=10), concurrent=1, trial_s=None)
    assert (plan.population, plan.generations) == (4, 5)
    assert "stops at 10 min" in plan.describe(10, [])
