"""The GA as a Ray Tune search algorithm: a thin translation layer, as Ray's own tune/search/optuna/ is.

A generation's members are asked from the GA one at a time, as Tune has room for a trial, and each result is
told as its trial completes: every member is chosen on all results so far, this generation's included (the GA's
ask_next). The next generation is bred when every trial of the current one has completed, or, under
multi-fidelity (provisional_from), when every one still running has passed the first rung: their latest reports
stand in for their results, so the next generation starts on the cores that stopped trials freed, and their
final results revise the GA when they arrive. A failed trial counts as the worst possible result.
save()/restore() hold the whole GA state as JSON, so Tuner.restore continues where the search stopped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ray.tune.search import Searcher
from yoloforge.core import atomic
from yoloforge.ga.algorithm import GeneticAlgorithm
from yoloforge.ga.fitness import target_violation
from yoloforge.ga.operators import row_keys


class GASearcher(Searcher):
    """objectives: (metric, "max" | "min") pairs, the first one primary; minimums/maximums: target constraints."""

    def __init__(self, ga: GeneticAlgorithm, objectives: Sequence[tuple[str, str]] = (("fitness", "max"),), *,
                 minimums: Mapping[str, float] | None = None, maximums: Mapping[str, float] | None = None,
                 max_concurrent: int = 0, provisional_from: tuple[str, float] | None = None) -> None:
        if len(objectives) != ga.n_obj:
            raise ValueError(f"{len(objectives)} objectives for a GA with n_obj={ga.n_obj}")
        super().__init__(metric=objectives[0][0], mode=objectives[0][1])
        self.ga = ga
        self.objectives = [(name, mode) for name, mode in objectives]
        self.minimums = dict(minimums or {})
        self.maximums = dict(maximums or {})
        self.max_concurrent = max_concurrent
        ga.set_has_targets(bool(self.minimums or self.maximums))
        self._configs: list[dict[str, Any]] = []  # the current generation's members asked so far
        self._queue: list[int] = []  # members asked but not handed out yet
        self._trials: dict[str, list[int]] = {}  # trial id -> [generation, index]
        self._results: dict[int, dict[str, Any] | None] = {}  # index -> metrics, None when the trial failed
        self._live: set[str] = set()
        self.history: list[dict[str, Any]] = []  # every completed trial, for trials.parquet
        # (result key, value): a running trial whose latest report reached it may be told provisionally
        self.provisional_from = tuple(provisional_from) if provisional_from else None
        self._latest: dict[str, dict[str, float]] = {}  # live trial -> its latest report's numbers
        self._provisional: dict[str, dict[str, Any]] = {}  # told with its latest report, still running

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # the objectives given at construction rule

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None
        if not self._queue and not self._ask_member():
            if self._generation_running() and not self._tell_provisionally():
                return None  # wait for it before breeding
            if self.ga.stop_reason():
                return Searcher.FINISHED
            self._breed()
        index = self._queue.pop(0)
        self._trials[trial_id] = [self.ga.generation, index]
        self._live.add(trial_id)
        return dict(self._configs[index])

    def _generation_running(self) -> bool:
        return bool(self._configs) and len(self._results) < len(self._configs) + self.ga.unasked

    def _ask_member(self) -> bool:
        """Queue the current generation's next member, chosen now; False when every member has been asked."""
        if not self._configs or not self.ga.unasked:
            return False
        self._queue_asked(self.ga.ask_next())
        return True

    def _queue_asked(self, asked: tuple[int, dict[str, Any]] | None) -> None:
        assert asked is not None and asked[0] == len(self._configs)
        self._configs.append(asked[1])
        self._queue.append(asked[0])

    def _tell_provisionally(self) -> bool:
        """Tell the running generation now if every member still running has reported at or past
        provisional_from (under ASHA: kept at the first rung) with finite objectives; True when told."""
        if self.provisional_from is None:
            return False
        key, start = self.provisional_from
        running = {tid: index for tid, (generation, index) in self._trials.items()
                   if generation == self.ga.generation and index not in self._results and tid in self._live}
        if len(running) != len(self._configs) - len(self._results):
            return False  # a member no trial runs
        latest = {tid: self._metrics(self._latest.get(tid), error=False) for tid in running}
        if any(m is None or not m.get(key, -math.inf) >= start for m in latest.values()):
            return False
        generation = self.ga.generation
        for tid, index in running.items():
            self._results[index] = latest[tid]
            self._provisional[tid] = {"generation": generation, "index": index,
                                      "config": self._configs[index], "metrics": latest[tid]}
            self._tell(index)
        return True

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._live:
            self._latest[trial_id] = {k: v for k, v in result.items() if isinstance(v, int | float)}

    def _breed(self) -> None:
        """Open the next generation with its first member."""
        self._configs, self._queue, self._results = [], [], {}
        self._queue_asked(self.ga.ask_next())

    def adopt(self, trial_id: str, config: Mapping[str, Any]) -> bool:
        """Record a trial Tune started from a suggestion this searcher's saved state predates (see
        tune_state.reconcile). The GA breeds the same members again from its saved state, so the trial is the
        queued member with its config; should none match, the next queued member takes the config that ran.
        False when the trial can have come from no member (the current generation is still running)."""
        if trial_id in self._trials:
            return True
        if not self._queue and not self._ask_member():
            if self._generation_running():
                return False
            self._breed()  # Tune started it, so the GA had not stopped when it was suggested
        # the same config as the GA tells configs apart (its duplicate check): rows of its encoding, rounded
        key, *queued = row_keys(self.ga.space.encode([config, *(self._configs[i] for i in self._queue)]))
        index = next((i for i, queued_key in zip(self._queue, queued, strict=True) if queued_key == key), None)
        if index is None:
            index = self._queue[0]
            self._configs[index] = self.ga.amend(index, config)
        self._queue.remove(index)
        self._trials[trial_id] = [self.ga.generation, index]
        self._live.add(trial_id)
        return True

    def forget_unknown(self, known: set[str]) -> list[str]:
        """Trials handed out but not finished that Tune has no record of (its saved state predates them) are
        forgotten and their members queued again, to be handed out to new trials. Returns their ids."""
        gone = sorted(self._live - known - set(self._provisional))
        for trial_id in gone:
            generation, index = self._trials.pop(trial_id)
            self._live.discard(trial_id)
            if generation == self.ga.generation and index not in self._results and index not in self._queue:
                self._queue = sorted([*self._queue, index])
        return gone

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)
        self._latest.pop(trial_id, None)
        if trial_id in self._provisional:  # its generation was told with its latest report: revise
            told = self._provisional.pop(trial_id)
            metrics = self._metrics(result, error)
            self._record(trial_id, told["generation"], told["index"], told["config"], metrics, error)
            F, cv = self._objectives([metrics])
            self.ga.revise(told["generation"], told["index"], F[0], float(cv[0]))
            return
        generation, index = self._trials.get(trial_id, [None, None])
        if generation != self.ga.generation or index is None or index in self._results:
            return
        metrics = self._metrics(result, error)
        self._results[index] = metrics
        self._record(trial_id, generation, index, self._configs[index], metrics, error)
        self._tell(index)

    def _metrics(self, result: Mapping[str, Any] | None, error: bool) -> dict[str, Any] | None:
        """A report's numbers, or None for a failed trial or one without every objective."""
        wanted = [name for name, _ in self.objectives]
        ok = not error and result is not None and all(_finite(result.get(name)) for name in wanted)
        return {k: v for k, v in (result or {}).items() if isinstance(v, int | float)} if ok else None

    def _record(self, trial_id: str, generation: int, index: int, config: dict[str, Any],
                metrics: dict[str, Any] | None, error: bool) -> None:
        self.history.append({"trial_id": trial_id, "generation": generation, "index": index, "config": config,
                             "metrics": metrics,
                             "status": "ok" if metrics is not None else ("error" if error else "missing metric")})

    def _objectives(self, rows: Sequence[Mapping[str, Any] | None]) -> tuple[np.ndarray, np.ndarray]:
        """The GA's objectives (minimised) and target violation of these results (None: failed, the worst)."""
        names = {name for name, _ in self.objectives} | set(self.minimums) | set(self.maximums)
        values = {name: np.array([(r or {}).get(name, np.nan) for r in rows], dtype=float) for name in names}
        sign = {"max": -1.0, "min": 1.0}
        F = np.stack([sign[mode] * values[name] for name, mode in self.objectives], axis=1)
        cv = target_violation(values, self.minimums, self.maximums)
        failed = np.array([r is None for r in rows], dtype=bool)
        return F, np.where(failed, np.inf, cv)

    def _tell(self, index: int) -> None:
        """A member's result to the GA; the generation closes with its last."""
        F, cv = self._objectives([self._results[index]])
        self.ga.tell_member(index, F[0], float(cv[0]))

    def placements(self) -> dict[str, tuple[int, int]]:
        """trial id -> (generation, index in it) for every trial handed out."""
        return {tid: (g, i) for tid, (g, i) in self._trials.items()}

    def complete_pending(self, results: Mapping[str, dict[str, Any] | None], only_known: bool = False) -> None:
        """Settle trials of the current generation that were handed out but never completed here: each gets its
        result recorded elsewhere (None = failed). Without only_known, a trial missing from results counts as
        failed too (a round stopped early); with it, such a trial stays pending (it will run again). Members not
        handed out yet stay queued. A trial told provisionally keeps its provisional result unless results
        has its own."""
        for trial_id in list(self._provisional):
            if trial_id in results:
                self.on_trial_complete(trial_id, results[trial_id], error=results[trial_id] is None)
            elif not only_known:
                told = self._provisional.pop(trial_id)
                self._live.discard(trial_id)
                self._record(trial_id, told["generation"], told["index"], told["config"], told["metrics"], False)
        for trial_id, (generation, index) in list(self._trials.items()):
            if generation != self.ga.generation or index in self._results:
                continue
            if only_known and trial_id not in results:
                continue
            result = results.get(trial_id)
            self.on_trial_complete(trial_id, result, error=result is None)

    def set_targets(self, minimums: Mapping[str, float] | None = None,
                    maximums: Mapping[str, float] | None = None) -> None:
        """Change the targets between rounds; every evaluated trial is judged again against them."""
        self.minimums, self.maximums = dict(minimums or {}), dict(maximums or {})
        self.ga.set_has_targets(bool(self.minimums or self.maximums))
        told = sorted((h for h in self.history if h["generation"] < self.ga.generation),
                      key=lambda h: (h["generation"], h["index"]))
        names = set(self.minimums) | set(self.maximums)
        values = {n: np.array([(h["metrics"] or {}).get(n, np.nan) for h in told], dtype=float) for n in names}
        cv = target_violation(values, self.minimums, self.maximums) if names else np.zeros(len(told))
        failed = np.array([h["metrics"] is None for h in told], dtype=bool)
        members = sorted(self._results) if self._generation_running() else []  # the open generation's told
        _, member_cv = self._objectives([self._results[i] for i in members])
        self.ga.recompute_constraints(np.where(failed, np.inf, cv), dict(zip(members, member_cv, strict=True)))

    # --- state ------------------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        return {"ga": self.ga.state_dict(), "objectives": self.objectives, "minimums": self.minimums,
                "maximums": self.maximums, "max_concurrent": self.max_concurrent, "configs": self._configs,
                "queue": self._queue, "trials": self._trials,
                "results": {str(k): v for k, v in self._results.items()}, "live": sorted(self._live),
                "history": self.history, "provisional_from": self.provisional_from, "latest": self._latest,
                "provisional": self._provisional}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.ga = GeneticAlgorithm.from_state(state["ga"])
        self.objectives = [tuple(o) for o in state["objectives"]]  # type: ignore[misc]
        self.minimums, self.maximums = dict(state["minimums"]), dict(state["maximums"])
        self.max_concurrent = state["max_concurrent"]
        self._configs = list(state["configs"])
        self._queue = list(state["queue"])
        self._trials = {k: list(v) for k, v in state["trials"].items()}
        self._results = {int(k): v for k, v in state["results"].items()}
        self._live = set(state["live"])
        self.history = list(state["history"])
        self.provisional_from = tuple(state["provisional_from"]) if state.get("provisional_from") else None
        self._latest = dict(state.get("latest", {}))
        self._provisional = dict(state.get("provisional", {}))

    def save(self, checkpoint_path: str) -> None:
        atomic.write_text(checkpoint_path, json.dumps(self.get_state()))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as f:
            self.set_state(json.load(f))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
