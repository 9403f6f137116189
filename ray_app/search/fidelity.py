"""Multi-fidelity (search.fidelity): Ray Tune's ASHA under the GA, and the epochs at which it can stop a trial."""

from __future__ import annotations

from typing import Any

from yoloforge.ray_app.spec import JobSpec


def trial_scheduler(spec: JobSpec) -> Any:
    """Tune's ASHA when the search is multi-fidelity (one bracket: every trial starts at the first rung), else
    None (Tune's FIFO). It compares the fitness every trial reports at the end of each epoch."""
    f = spec.search.fidelity
    if f is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    # rungs strictly before the last epoch (ASHA places them up to max_t), and stop_last_trials off: a trial that
    # reaches its last epoch ends by itself, with the final report that carries its costs and weights
    return ASHAScheduler(time_attr="epoch", metric="fitness", mode="max", max_t=spec.search.epochs - 1,
                         grace_period=f.min_epochs, reduction_factor=f.reduction, brackets=1,
                         stop_last_trials=False)


def rungs(spec: JobSpec) -> list[int]:
    """The epochs at which a trial can be stopped (as the scheduler places them), none without search.fidelity."""
    scheduler = trial_scheduler(spec)
    return sorted(int(m) for m, _ in scheduler._brackets[0]._rungs) if scheduler is not None else []
