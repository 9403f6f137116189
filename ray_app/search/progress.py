"""What Tune tells the user while a search runs: the live table of running trials, one line per finished trial,
and the stopper that ends the experiment when a target is met or the time is up."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from ray import tune
from yoloforge.ray_app.console import console
from yoloforge.ray_app.outcome import meets_targets


class TargetStopper(tune.Stopper):
    """Ends the whole experiment as soon as a finished trial meets every target, or the time is up. The time
    left is the GA's (GeneticAlgorithm.time_left_s, its clock counts every round), read when the round starts."""

    def __init__(self, minimums: dict[str, float], time_left_s: float | None) -> None:
        self.minimums, self.time_budget_s = minimums, time_left_s
        self.met = False
        self._start: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_start": None}  # a restored run gets the budget's remainder from the GA

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if result.get("final") and self.minimums and meets_targets(result, self.minimums):
            self.met = True
        return False

    def stop_all(self) -> bool:
        self._start = self._start or time.monotonic()
        over_time = self.time_budget_s is not None and time.monotonic() - self._start > self.time_budget_s
        return self.met or over_time


class Progress(tune.Callback):
    """One line per finished trial: generation, counts, this trial, the best so far against the target. In a
    terminal, also a live table of the running trials: epoch, latest accuracy, time left."""

    def __init__(self, population: int, generations: int, target: dict[str, float], epochs: int = 0) -> None:
        self.population, self.generations, self.target, self.epochs = population, generations, target, epochs
        self.done = self.failed = 0
        self.best = -math.inf
        self.durations: list[float] = []
        self.started: dict[str, float] = {}
        self.running: dict[str, dict[str, Any]] = {}  # trial id -> its latest epoch report
        self.reported: set[str] = set()  # trials whose final line is printed
        self.live: Any = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.monotonic()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("final"):  # a met target ends the experiment before Tune calls on_trial_complete
            self._complete(trials, trial, result)
            return
        if not console.is_terminal:
            return
        self.running[trial.trial_id] = result
        if self.live is None:
            from rich.live import Live

            self.live = Live(self._table(), console=console, transient=True, auto_refresh=False)
            self.live.start()
        self.live.update(self._table(), refresh=True)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title="running trials", title_justify="left", box=None, pad_edge=False)
        for column in ("trial", "epoch", "mAP50 / top1", "fitness", "time left"):
            table.add_column(column, justify="left" if column == "trial" else "right")
        for trial_id, r in sorted(self.running.items()):
            accuracy = next((r[k] for k in ("mAP50", "top1") if r.get(k) is not None), None)
            table.add_row(trial_id, f"{r.get('epoch', 0)}/{r.get('epochs') or self.epochs or '?'}",
                          "-" if accuracy is None else f"{accuracy:.3f}", f"{r.get('fitness') or 0:.4f}",
                          f"{(r.get('eta_s') or 0) / 60:.1f} min")
        return table

    def _finished(self, trial: Any) -> None:
        self.running.pop(trial.trial_id, None)
        if self.live is not None:
            self.live.update(self._table(), refresh=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _line(self, trials: list, trial: Any, text: str) -> None:
        running = sum(t.status == "RUNNING" and t.trial_id not in self.reported for t in trials)
        total = self.population * self.generations
        if trial.trial_id in self.started:
            self.durations.append(time.monotonic() - self.started.pop(trial.trial_id))
        remaining = max(0, total - self.done - self.failed)
        eta = np.mean(self.durations) * remaining / max(1, running or 1) if self.durations else 0
        gen = (self.done + self.failed - 1) // self.population + 1
        target = ", ".join(f"{k} >= {v}" for k, v in self.target.items()) or "none"
        console.print(f"gen {gen}/{self.generations} · {self.done + self.failed}/{total} trials "
                      f"({running} running, {self.failed} failed) · {text} · best fitness {self.best:.4f} · "
                      f"target {target} · ETA {eta / 60:.1f} min", markup=False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._complete(trials, trial, trial.last_result or {})

    def _complete(self, trials: list, trial: Any, result: dict) -> None:
        if trial.trial_id in self.reported:
            return
        self.reported.add(trial.trial_id)
        self._finished(trial)
        self.done += 1
        if "fitness" in result:
            self.best = max(self.best, result["fitness"])
        shown = {k: result.get(k) for k in ("mAP50", "mAP50-95", "top1") if result.get(k) is not None}
        self._line(trials, trial, "trial " + " ".join(f"{k} {v:.3f}" for k, v in shown.items()))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial)
        self.failed += 1
        self._line(trials, trial, f"trial {trial.trial_id} failed")

