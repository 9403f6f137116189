"""The genetic algorithm as a thin ask/tell object over the pure operators.

Survival is (mu + lambda): parents and children compete, so the best individual found is never lost (elitism).
Scalar mode ranks by one minimised objective; pareto mode by NSGA-II fronts and crowding distance. Targets
enter as constraint violation: feasible individuals always rank before infeasible ones. The step size of the
polynomial mutation (its distribution index eta_m: lower = larger steps) adapts by the 1/5 success rule.
The whole state, RNG included, round-trips through JSON, so a resumed run continues exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from yoloforge.ga.operators import (
    duplicate_mask,
    gaussian_mutation,
    non_dominated_sort,
    polynomial_mutation,
    row_keys,
    sbx_crossover,
    scalar_rank,
    survival_rank,
    tournament_select,
)
from yoloforge.ga.space import SearchSpace
from yoloforge.ga.surrogate import CANDIDATES, EXPLORE, make_surrogate

ETA_M_BOUNDS = (5.0, 100.0)
SURROGATE_MAX_OBSERVATIONS = 200


def latin_hypercube(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """n points in [0, 1]^d, one per stratum in every dimension."""
    strata = np.argsort(rng.random((n, d)), axis=0)
    return (strata + rng.random((n, d))) / n


class GeneticAlgorithm:
    """ask() -> configs of one generation; tell(objectives, violation) -> next generation is bred. Or one member
    at a time: ask_next() -> (index, config), tell_member(index, objectives, violation)."""

    def __init__(self, space: SearchSpace, pop_size: int = 8, n_obj: int = 1, seed: int = 0, *,
                 n_elite: int = 1, mutation_rate: float | None = None, eta_m: float = 20.0, eta_c: float = 15.0,
                 max_generations: int | None = None, stagnation: int | None = None,
                 time_budget_s: float | None = None, initial: Sequence[Mapping[str, Any]] = (),
                 warm_fraction: float = 0.5, warm_sigma: float = 0.2, surrogate: str | None = None,
                 candidates: int = CANDIDATES, explore: float = EXPLORE) -> None:
        if pop_size < 2:
            raise ValueError("pop_size must be at least 2")
        self.space = space
        self.pop_size = pop_size
        self.n_obj = n_obj
        self.seed = seed
        self.n_elite = n_elite
        self.mutation_rate = mutation_rate if mutation_rate is not None else float(np.clip(1.0 / space.dim, 0.05, 0.2))
        self.eta_m = eta_m
        self.eta_c = eta_c
        self.max_generations = max_generations
        self.stagnation = stagnation
        self.time_budget_s = time_budget_s
        self.initial = [dict(c) for c in initial]
        self.warm_fraction = warm_fraction
        self.warm_sigma = warm_sigma
        # surrogate-assisted breeding (scalar mode): `candidates` children bred per place, a model of every finished
        # trial ranks them, the best (1 - explore) share is trained and the rest are drawn at random from the others
        self.surrogate = surrogate if n_obj == 1 else None
        if surrogate is not None:
            make_surrogate(surrogate)  # an unknown name fails here, not generations later
        self.candidates = max(1, candidates)
        self.explore = float(np.clip(explore, 0.0, 1.0))
        self.rng = np.random.default_rng(seed)
        self.generation = 0
        d = space.dim
        self.X = np.zeros((0, d))  # current population (evaluated)
        self.F = np.zeros((0, n_obj))
        self.cv = np.zeros(0)
        # everything ever evaluated
        self._archive_X, self._archive_F = _Growing((d,)), _Growing((n_obj,))
        self._archive_cv, self._archive_gen = _Growing(()), _Growing((), int)
        self._best_feasible, self._least_cv = np.inf, np.inf  # running summaries of the archive
        self._seen: set[bytes] = set()  # row keys of the archive, for duplicate avoidance
        self.best_history: list[float] = []
        # the open generation: its members asked so far, the candidates the rest are chosen from (None when every
        # member was fixed when it opened), its size, and the results told so far (NaN: not yet)
        self._asked: np.ndarray | None = None
        self._pool: np.ndarray | None = None
        self._size = 0
        self._given = 0  # members handed out by ask() or ask_next()
        self._told_F, self._told_cv = np.zeros((0, n_obj)), np.zeros(0)
        self._has_targets = False
        self._elapsed_before = 0.0
        self._started = time.monotonic()

    # --- ask / tell ----------------------------------------------------------------------------------------

    def ask(self) -> list[dict[str, Any]]:
        """The configs of the current generation (the same ones again until it is told). Members not asked yet are
        chosen together, on the results told so far."""
        self._open()
        assert self._asked is not None
        if len(self._asked) < self._size:
            self._ask_more(self._size - len(self._asked))
        self._given = self._size
        return self.space.decode(self._asked)

    def ask_next(self) -> tuple[int, dict[str, Any]] | None:
        """One more member of the current generation (opening it if none is open), as (index, config), or None
        when every member has been asked. Each member is chosen on every result told so far, this generation's
        included, with the members still running believed at the model's mean: a search that asks as trials
        finish refits its model after every result instead of once a generation."""
        self._open()
        assert self._asked is not None
        if self._given == self._size:
            return None
        if self._given == len(self._asked):
            self._ask_more(1)
        index, self._given = self._given, self._given + 1
        return index, self.space.decode(self._asked[index: index + 1])[0]

    @property
    def unasked(self) -> int:
        """Members of the open generation not asked yet (0 when none is open)."""
        return 0 if self._asked is None else self._size - self._given

    def amend(self, index: int, config: Mapping[str, Any]) -> dict[str, Any]:
        """Member `index` of the asked generation becomes `config`: what tell() scores is what actually ran.
        Returns the member as the GA now holds it."""
        if self._asked is None or not 0 <= index < self._given:
            raise RuntimeError(f"amend() of member {index}, which was not asked")
        self._asked[index] = self.space.snap(self.space.encode([config]))[0]
        return self.space.decode(self._asked[index: index + 1])[0]

    def tell(self, F: np.ndarray | Sequence[Sequence[float]], cv: np.ndarray | Sequence[float] | None = None) -> None:
        """Objectives (minimised; NaN = failed trial, ranked worst) and constraint violation of the asked configs."""
        if self._asked is None or self._given < self._size:
            raise RuntimeError("tell() without ask()")
        n = len(self._asked)
        F = np.asarray(F, dtype=float).reshape(n, self.n_obj)
        cv = np.zeros(n) if cv is None else np.asarray(cv, dtype=float).reshape(n)
        self._told_F, self._told_cv = F.copy(), cv.copy()
        self._close()

    def tell_member(self, index: int, F: Sequence[float], cv: float = 0.0) -> None:
        """One asked member's objectives and violation; the generation closes (survival) when its last member is
        told."""
        if self._asked is None or not 0 <= index < self._given:
            raise RuntimeError(f"tell_member() of member {index}, which was not asked")
        self._told_F[index] = np.asarray(F, dtype=float).reshape(self.n_obj)
        self._told_cv[index] = np.inf if np.isnan(cv) else cv  # NaN marks a member not told yet
        if self._given == self._size and not np.isnan(self._told_cv).any():
            self._close()

    def _close(self) -> None:
        assert self._asked is not None
        children = self._asked
        F = np.where(np.isfinite(self._told_F), self._told_F, np.inf)
        cv = np.where(np.isfinite(self._told_cv), self._told_cv, np.inf)
        self._archive(children, F, cv, np.full(len(children), self.generation))

        X_all = np.vstack([self.X, children])
        F_all = np.vstack([self.F, F])
        cv_all = np.concatenate([self.cv, cv])
        keep = np.argsort(self._rank(F_all, cv_all), kind="stable")[: self.pop_size]
        if self.generation > 0:  # 1/5 success rule: larger steps while children keep winning, smaller otherwise
            success = np.mean(keep >= len(self.X))
            self.eta_m = float(np.clip(self.eta_m * (1 / 1.22 if success > 0.2 else 1.22), *ETA_M_BOUNDS))
        self.X, self.F, self.cv = X_all[keep], F_all[keep], cv_all[keep]
        self.best_history.append(self._best_value())
        self.generation += 1
        self._asked, self._pool, self._size, self._given = None, None, 0, 0

    def revise(self, generation: int, index: int, F: Sequence[float], cv: float = 0.0) -> None:
        """Member `index` of an already told `generation` now has these objectives and violation (it was told
        with a provisional result, a running trial's latest): the archive, and the population if it survived,
        hold the new values from here on."""
        rows = np.flatnonzero(self.archive_gen == generation)
        if not 0 <= index < len(rows) or generation >= self.generation:
            raise ValueError(f"no told member {index} of generation {generation}")
        row = rows[index]
        F_row = np.asarray(F, dtype=float).reshape(self.n_obj)
        F_row = np.where(np.isfinite(F_row), F_row, np.inf)
        cv = float(cv) if np.isfinite(cv) else np.inf
        self._archive_F.view[row], self._archive_cv.view[row] = F_row, cv
        key = row_keys(self.archive_X[row: row + 1])[0]
        for i, population_key in enumerate(row_keys(self.X)):
            if population_key == key:
                self.F[i], self.cv[i] = F_row, cv
        order = np.argsort(self._rank(self.F, self.cv), kind="stable")
        self.X, self.F, self.cv = self.X[order], self.F[order], self.cv[order]
        feasible = self.archive_cv <= 0
        self._best_feasible = float(self.archive_F[feasible, 0].min()) if feasible.any() else np.inf
        self._least_cv = float(self.archive_cv.min())
        if self.best_history:
            self.best_history[-1] = self._best_value()

    # --- progress ----------------------------------------------------------------------------------------

    def stop_reason(self) -> str | None:
        """Why the search should end now, or None. 'target' needs constraints given to tell()."""
        if self._has_targets and self._least_cv <= 0:
            return "target"
        if self.max_generations is not None and self.generation >= self.max_generations:
            return "max_generations"
        if self.stagnation and len(self.best_history) > self.stagnation:
            recent = self.best_history[-(self.stagnation + 1):]
            if not recent[-1] < recent[0] - 1e-12:
                return "stagnation"
        if self.time_budget_s is not None and self.elapsed_s >= self.time_budget_s:
            return "time_budget"
        return None

    def extend(self, generations: int) -> None:
        """Search this many generations beyond those done. They were asked for explicitly, so stagnation no
        longer ends the search early."""
        self.max_generations = self.generation + generations
        self.stagnation = None

    def time_left_s(self) -> float | None:
        """What remains of the time budget (None: no budget); the search's only clock."""
        return None if self.time_budget_s is None else max(0.0, self.time_budget_s - self.elapsed_s)

    def set_has_targets(self, value: bool = True) -> None:
        """With targets, a feasible individual (violation 0) ends the search."""
        self._has_targets = value

    @property
    def elapsed_s(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

    def best(self) -> tuple[dict[str, Any], np.ndarray, float]:
        """Best config evaluated so far (feasible first, then first objective), its objectives and violation."""
        if not len(self.archive_X):
            raise RuntimeError("nothing evaluated yet")
        i = int(np.argmin(scalar_rank(self.archive_F[:, 0], self.archive_cv)))
        return self.space.decode(self.archive_X[i : i + 1])[0], self.archive_F[i], float(self.archive_cv[i])

    def pareto_front(self) -> np.ndarray:
        """Archive indices of the non-dominated evaluated individuals (feasible ones, if any are)."""
        ranks = non_dominated_sort(self.archive_F, self.archive_cv)
        return np.flatnonzero(ranks == 0)

    # --- internals --------------------------------------------------------------------------------------

    def _rank(self, F: np.ndarray, cv: np.ndarray) -> np.ndarray:
        return scalar_rank(F[:, 0], cv) if self.n_obj == 1 else survival_rank(F, cv)

    def recompute_constraints(self, archive_cv: np.ndarray, member_cv: Mapping[int, float] | None = None) -> None:
        """New targets: replace the violation of every archived individual (archive order) and of the open
        generation's told members (member_cv: index -> violation), and re-rank."""
        for index, value in (member_cv or {}).items():
            self._told_cv[index] = value if np.isfinite(value) else np.inf
        archive_cv = np.where(np.isfinite(archive_cv), archive_cv, np.inf)
        self._archive_cv.view[:] = archive_cv
        by_key = dict(zip(row_keys(self.archive_X), archive_cv, strict=True))
        self.cv = np.array([by_key.get(k, np.inf) for k in row_keys(self.X)])
        order = np.argsort(self._rank(self.F, self.cv), kind="stable")
        self.X, self.F, self.cv = self.X[order], self.F[order], self.cv[order]
        feasible = archive_cv <= 0
        self._best_feasible = float(self.archive_F[feasible, 0].min()) if feasible.any() else np.inf
        self._least_cv = float(archive_cv.min()) if len(archive_cv) else np.inf

    @property
    def archive_X(self) -> np.ndarray:
        return self._archive_X.view

    @property
    def archive_F(self) -> np.ndarray:
        return self._archive_F.view

    @property
    def archive_cv(self) -> np.ndarray:
        return self._archive_cv.view

    @property
    def archive_gen(self) -> np.ndarray:
        return self._archive_gen.view

    def _archive(self, X: np.ndarray, F: np.ndarray, cv: np.ndarray, gen: np.ndarray) -> None:
        self._archive_X.append(X)
        self._archive_F.append(F)
        self._archive_cv.append(cv)
        self._archive_gen.append(gen)
        self._seen.update(row_keys(X))
        feasible = cv <= 0
        if feasible.any():
            self._best_feasible = min(self._best_feasible, float(F[feasible, 0].min()))
        if len(cv):
            self._least_cv = min(self._least_cv, float(cv.min()))

    def _best_value(self) -> float:
        if np.isfinite(self._best_feasible) or self._least_cv <= 0:
            return self._best_feasible
        return 1e12 + self._least_cv  # no feasible point yet: progress means less violation

    def _initial_population(self) -> np.ndarray:
        """Latin-hypercube samples; with starting points: those, then a share of their mutants, then samples.

        Known-good starting points (Ultralytics' defaults, the user's own) sit in a small good region of a wide
        space; with a budget of a few generations, sampling around them first finds more than spreading every
        trial over the whole space (the reason Ultralytics' own tuner only mutates its best). A mutant moves each
        gene with probability 0.5 by a normal step of warm_sigma of its range: 0.2, as Ultralytics' tuner steps
        (0.1 made near-copies of the defaults, which re-measured their noise: docs/measured-defaults.md)."""
        X = latin_hypercube(self.rng, self.pop_size, self.space.dim)
        if self.initial:
            seeds = self.space.encode([{**c} for c in self.initial[: self.pop_size]])
            X[: len(seeds)] = seeds
            n_warm = round((self.pop_size - len(seeds)) * self.warm_fraction)
            if n_warm:
                parents = seeds[np.arange(n_warm) % len(seeds)]
                X[len(seeds): len(seeds) + n_warm] = gaussian_mutation(self.rng, parents, 0.5, self.warm_sigma)
        return X

    def _open(self) -> None:
        """Open the next generation unless one is open: the initial population, the children of the plain GA, or,
        with a surrogate, the pool of candidate children its members are chosen from as they are asked."""
        if self._asked is not None:
            return
        self._pool = None
        if self.generation == 0:
            members = self._initial_population()
        elif self.surrogate is None or self.candidates == 1:
            members = self._offspring(self.pop_size)
        else:
            pool = self._deduplicate(self.space.snap(np.vstack([self._offspring(self.pop_size)
                                                                for _ in range(self.candidates)])))
            pool = pool[np.unique(row_keys(pool), return_index=True)[1]]  # one of each
            members = pool if len(pool) <= self.pop_size else pool[:0]
            if len(pool) > self.pop_size:
                self._pool = pool
        self._asked = self._deduplicate(self.space.snap(members))
        self._size = self.pop_size if self._pool is not None else len(self._asked)
        self._given = 0
        self._told_F, self._told_cv = np.full((self._size, self.n_obj), np.nan), np.full(self._size, np.nan)

    def _ask_more(self, n: int) -> None:
        """Choose n more members from the pool: a member's place decides how (the first 1 - explore share by the
        model, each pick believed with the members asked before it; the rest drawn at random)."""
        assert self._asked is not None and self._pool is not None and self.surrogate is not None
        first = len(self._asked)
        n_model = self._size - round(self._size * self.explore)
        k_model = max(0, min(first + n, n_model) - first)
        picked = np.zeros(0, dtype=int)
        if k_model:
            X, y = self._surrogate_observations()
            model = make_surrogate(self.surrogate).fit(X, y)
            pending = self._asked[np.isnan(self._told_cv[:first])]
            picked = model.choose(self._pool, k_model, pending=pending)
        rest = np.setdiff1d(np.arange(len(self._pool)), picked)
        chosen = np.concatenate([picked, self.rng.choice(rest, n - k_model, replace=False)]).astype(int)
        self._asked = np.vstack([self._asked, self._pool[chosen]])
        self._pool = np.delete(self._pool, chosen, axis=0)

    def _surrogate_observations(self) -> tuple[np.ndarray, np.ndarray]:
        """What the model is fitted on: every trial while they are few; past SURROGATE_MAX_OBSERVATIONS, the best
        half of that many and the most recent (a GP's cost grows with the cube of its observations)."""
        X, y = self.archive_X, self.archive_F[:, 0]
        if self._asked is not None:  # the open generation's members told so far
            told = np.flatnonzero(~np.isnan(self._told_cv[: len(self._asked)]))
            told_y = self._told_F[told, 0]
            X = np.vstack([X, self._asked[told]])
            y = np.concatenate([y, np.where(np.isfinite(told_y), told_y, np.inf)])
        if len(y) <= SURROGATE_MAX_OBSERVATIONS:
            return X, y
        half = SURROGATE_MAX_OBSERVATIONS // 2
        best = np.argsort(np.where(np.isfinite(y), y, np.inf), kind="stable")[:half]
        keep = np.union1d(best, np.arange(len(y) - half, len(y)))
        return X[keep], y[keep]

    def _offspring(self, n: int) -> np.ndarray:
        """n children: tournament, SBX crossover, polynomial mutation."""
        key = np.arange(len(self.X))  # survival stored the population best first (front, then crowding)
        n_pairs = math.ceil(n / 2)
        parents = tournament_select(self.rng, key, 2 * n_pairs)
        # the elite always mate, so the best genes are carried forward in every generation
        elite = np.argsort(key)[: self.n_elite]
        parents[: len(elite) * 2 : 2] = elite
        c1, c2 = sbx_crossover(self.rng, self.X[parents[0::2]], self.X[parents[1::2]], eta=self.eta_c)
        children = np.vstack([c1, c2])[:n]
        return polynomial_mutation(self.rng, children, self.mutation_rate, self.eta_m)

    def _deduplicate(self, X: np.ndarray, tries: int = 20) -> np.ndarray:
        """Re-mutate children that repeat an evaluated config or a sibling, with ever larger steps."""
        for attempt in range(tries):
            dup = duplicate_mask(X, self._seen)
            if not dup.any():
                break
            if attempt < tries // 2:
                rate = min(1.0, self.mutation_rate * 2 ** (attempt + 1))
                X[dup] = self.space.snap(polynomial_mutation(self.rng, X[dup], rate, ETA_M_BOUNDS[0]))
            else:  # a crowded discrete space: fresh random points find the configs still unseen
                X[dup] = self.space.snap(self.rng.random((int(dup.sum()), X.shape[1])))
        return X

    # --- state --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly here, as JSON-able values."""
        return {
            "space": self.space.to_json(), "pop_size": self.pop_size, "n_obj": self.n_obj, "seed": self.seed,
            "n_elite": self.n_elite, "mutation_rate": self.mutation_rate, "eta_m": self.eta_m, "eta_c": self.eta_c,
            "max_generations": self.max_generations, "stagnation": self.stagnation,
            "time_budget_s": self.time_budget_s, "initial": self.initial,
            "warm_fraction": self.warm_fraction, "warm_sigma": self.warm_sigma, "has_targets": self._has_targets,
            "surrogate": self.surrogate, "candidates": self.candidates, "explore": self.explore,
            "rng": self.rng.bit_generator.state, "generation": self.generation,
            "X": self.X.tolist(), "F": _json_floats(self.F), "cv": _json_floats(self.cv),
            "archive_X": self.archive_X.tolist(), "archive_F": _json_floats(self.archive_F),
            "archive_cv": _json_floats(self.archive_cv), "archive_gen": self.archive_gen.tolist(),
            "best_history": self.best_history,
            "asked": None if self._asked is None else self._asked.tolist(), "elapsed_s": self.elapsed_s,
            "pool": None if self._pool is None else self._pool.tolist(), "size": self._size, "given": self._given,
            "told_F": _json_floats(self._told_F), "told_cv": _json_floats(self._told_cv),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> GeneticAlgorithm:
        ga = cls(SearchSpace.from_json(state["space"]), state["pop_size"], state["n_obj"], state["seed"],
                 n_elite=state["n_elite"], mutation_rate=state["mutation_rate"], eta_m=state["eta_m"],
                 eta_c=state["eta_c"], max_generations=state["max_generations"], stagnation=state["stagnation"],
                 time_budget_s=state["time_budget_s"], initial=state["initial"],
                 warm_fraction=state.get("warm_fraction", 0.5), warm_sigma=state.get("warm_sigma", 0.1),
                 surrogate=state.get("surrogate"), candidates=state.get("candidates", CANDIDATES),
                 explore=state.get("explore", EXPLORE))
        ga._has_targets = state["has_targets"]
        ga.rng.bit_generator.state = state["rng"]
        ga.generation = state["generation"]
        d, m = ga.space.dim, ga.n_obj
        ga.X = np.array(state["X"], dtype=float).reshape(-1, d)
        ga.F = _from_json_floats(state["F"]).reshape(-1, m)
        ga.cv = _from_json_floats(state["cv"]).reshape(-1)
        ga._archive(np.array(state["archive_X"], dtype=float).reshape(-1, d),
                    _from_json_floats(state["archive_F"]).reshape(-1, m),
                    _from_json_floats(state["archive_cv"]).reshape(-1), np.array(state["archive_gen"], dtype=int))
        ga.best_history = list(state["best_history"])
        ga._asked = None if state["asked"] is None else np.array(state["asked"], dtype=float).reshape(-1, d)
        ga._pool = None if state.get("pool") is None else np.array(state["pool"], dtype=float).reshape(-1, d)
        ga._size = state.get("size", 0 if ga._asked is None else len(ga._asked))
        ga._given = state.get("given", ga._size)  # a state from before ask_next: its ask() gave every member
        ga._told_F = _from_json_floats(state["told_F"]).reshape(-1, m) if "told_F" in state else \
            np.full((ga._size, m), np.nan)
        ga._told_cv = _from_json_floats(state["told_cv"]).reshape(-1) if "told_cv" in state else \
            np.full(ga._size, np.nan)
        ga._elapsed_before = state["elapsed_s"]
        return ga


class _Growing:
    """An append-only array with amortised O(1) appends (a numpy array cannot grow in place; vstack copies)."""

    def __init__(self, row_shape: tuple[int, ...], dtype: type = float) -> None:
        self._data = np.zeros((64, *row_shape), dtype=dtype)
        self._n = 0

    def append(self, rows: np.ndarray) -> None:
        needed = self._n + len(rows)
        if needed > len(self._data):
            grown = np.zeros((max(needed, 2 * len(self._data)), *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n : needed] = rows
        self._n = needed

    @property
    def view(self) -> np.ndarray:
        return self._data[: self._n]


def _json_floats(a: np.ndarray) -> Any:
    """JSON has no infinity: failed trials' inf objectives are stored as the string 'inf'."""
    if a.ndim > 1:
        return [_json_floats(row) for row in a]
    return [float(x) if np.isfinite(x) else str(float(x)) for x in a]


def _from_json_floats(values: Any) -> np.ndarray:
    def conv(v: Any) -> Any:  # float() reads both numbers and 'inf'
        return [conv(x) for x in v] if isinstance(v, list) else float(v)

    return np.array(conv(values), dtype=float)
