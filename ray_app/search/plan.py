"""The search's plan: how many trials a generation and how many generations, fitted to search.time_budget_min.

Without a time budget the plan is the job's population and generations. With one, a trial's time is estimated
before any trial trains, from what is known then: the architecture's latency at the input size (measured once for
CPU trials, trainable.shared_latency_ms), the images a trial trains and validates on every epoch, the epochs, how
many trials Ray runs at once, and the share of epochs ASHA leaves trials when search.fidelity is set. Whatever
the estimate, the GA stops the search when the budget is spent; the plan decides how the budget is shared out
(a population small enough for several generations to run) and says so before the search starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from yoloforge.ray_app.spec import JobSpec

# a training pass (forward, backward, optimizer step, augmentation) of one image against one inference forward,
# fitted on CPU trials of the synthetic shapes (docs/search.md), and a trial's fixed cost (Ultralytics' setup,
# the final validation and the cost measurements)
TRAIN_PASS_FORWARDS = 3.0
TRIAL_SETUP_S = 10.0
# the fewest generations the plan leaves the GA when it chooses the population itself: one to start from, two
# to evolve
MIN_GENERATIONS = 3


@dataclass(frozen=True)
class SearchPlan:
    population: int
    generations: int
    concurrent: int
    trial_s: float | None = None  # estimated seconds of one trial trained to its last epoch
    epoch_share: float = 1.0  # the share of its epochs a trial trains on average (ASHA's rungs stop some early)
    budget_s: float | None = None

    @property
    def trials(self) -> int:
        return self.population * self.generations

    def describe(self, epochs: int, rungs: Sequence[int]) -> str:
        text = (f"{self.population} trials per generation, up to {self.generations} generations, {epochs} epochs "
                f"each, {self.concurrent} at a time")
        if rungs:
            text += (f"; trials below the top share are stopped at epoch {', '.join(map(str, rungs))} (ASHA), "
                     f"{self.epoch_share:.0%} of their epochs trained on average if each rung keeps its share")
        if self.budget_s is not None:
            minutes = self.budget_s / 60
            if self.trial_s is None:
                text += f"; the search stops at {minutes:g} min (a trial's time is not known before one trains here)"
            else:
                text += (f"; planned for {minutes:g} min: a whole trial takes about {self.trial_s / 60:.1f} min here, "
                         f"so about {self.trials} trials fit (the search stops at {minutes:g} min whatever this "
                         "estimate)")
        return text


def expected_epoch_share(epochs: int, rungs: Sequence[int], reduction: int) -> float:
    """The mean share of its epochs a trial trains when each rung keeps 1/reduction of those reaching it."""
    if not rungs:
        return 1.0
    bounds = [0, *rungs, epochs]
    trained = sum((bounds[k + 1] - bounds[k]) / reduction ** k for k in range(len(bounds) - 1))
    return trained / epochs


def estimate_trial_s(epochs: int, n_train: int, n_val: int, latency_ms: float) -> float:
    """Seconds one trial takes to train all its epochs on one trial's share of the machine."""
    per_epoch_s = (TRAIN_PASS_FORWARDS * n_train + n_val) * latency_ms / 1000
    return TRIAL_SETUP_S + epochs * per_epoch_s


def plan_search(spec: JobSpec, concurrent: int, trial_s: float | None, rungs: Sequence[int] = ()) -> SearchPlan:
    """The population and generations for this job. Settings the job gives are kept: a population it names stays,
    generations it names are an upper bound; the others are fitted to the time budget."""
    s = spec.search
    concurrent = max(1, concurrent)
    share = expected_epoch_share(s.epochs, rungs, s.fidelity.reduction) if s.fidelity else 1.0
    if s.time_budget_min is None or trial_s is None:
        return SearchPlan(s.population, s.generations, concurrent, trial_s, share,
                          s.time_budget_min * 60 if s.time_budget_min else None)
    budget_s = s.time_budget_min * 60
    # trials run `concurrent` at a time, and a generation waits for its last trial: whole rounds of `concurrent`
    fit = max(1, math.floor(budget_s / (trial_s * share)) * concurrent)
    named = s.model_fields_set
    population = s.population if "population" in named else max(2, min(s.population, fit // MIN_GENERATIONS))
    generations = max(1, fit // population)
    if "generations" in named:
        generations = min(generations, s.generations)
    return SearchPlan(population, generations, concurrent, trial_s, share, budget_s)
