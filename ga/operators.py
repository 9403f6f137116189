"""GA operators as pure functions on whole populations: arrays of shape (population, genes) in [0, 1].

All objectives are minimised. Loops run over fronts or objectives, never over individuals.
"""

from __future__ import annotations

import numpy as np


def tournament_select(rng: np.random.Generator, rank_key: np.ndarray, n_select: int, k: int = 2) -> np.ndarray:
    """Indices of n_select winners of k-way tournaments; lower rank_key wins."""
    candidates = rng.integers(0, len(rank_key), size=(n_select, k))
    return candidates[np.arange(n_select), np.argmin(rank_key[candidates], axis=1)]


def sbx_crossover(rng: np.random.Generator, P1: np.ndarray, P2: np.ndarray, eta: float = 15.0,
                  prob: float = 0.9, gene_prob: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Simulated binary crossover (Deb & Agrawal), bounded to [0, 1]; two children per pair of parents."""
    n, d = P1.shape
    y1, y2 = np.minimum(P1, P2), np.maximum(P1, P2)
    delta = np.maximum(y2 - y1, 1e-12)
    u = rng.random((n, d))

    def child(bound_gap: np.ndarray) -> np.ndarray:
        beta = 1.0 + 2.0 * bound_gap / delta
        alpha = 2.0 - np.power(beta, -(eta + 1.0))
        inv = 1.0 / (eta + 1.0)
        return np.where(u <= 1.0 / alpha, np.power(u * alpha, inv), np.power(1.0 / (2.0 - u * alpha), inv))

    c1 = 0.5 * (y1 + y2 - child(y1) * delta)
    c2 = 0.5 * (y1 + y2 + child(1.0 - y2) * delta)
    swap = rng.random((n, d)) < 0.5
    c1, c2 = np.where(swap, c2, c1), np.where(swap, c1, c2)
    active = (rng.random((n, d)) < gene_prob) & (rng.random((n, 1)) < prob) & (np.abs(P1 - P2) > 1e-12)
    return (np.clip(np.where(active, c1, P1), 0, 1), np.clip(np.where(active, c2, P2), 0, 1))


def gaussian_mutation(rng: np.random.Generator, X: np.ndarray, rate: float | np.ndarray,
                      sigma: float | np.ndarray) -> np.ndarray:
    """Add N(0, sigma) to each gene with probability rate (per gene); every row changes at least one gene."""
    n, d = X.shape
    mask = rng.random((n, d)) < rate
    forced = rng.integers(0, d, size=n)
    mask[np.arange(n), forced] |= ~mask.any(axis=1)
    return repair_bounds(np.where(mask, X + rng.normal(0.0, 1.0, (n, d)) * sigma, X))


def polynomial_mutation(rng: np.random.Generator, X: np.ndarray, rate: float, eta: float = 20.0) -> np.ndarray:
    """Deb's bounded polynomial mutation on [0, 1]."""
    n, d = X.shape
    u = rng.random((n, d))
    inv = 1.0 / (eta + 1.0)
    lo = np.power(2 * u + (1 - 2 * u) * np.power(1 - X, eta + 1), inv) - 1
    hi = 1 - np.power(2 * (1 - u) + 2 * (u - 0.5) * np.power(X, eta + 1), inv)
    delta = np.where(u < 0.5, lo, hi)
    mask = rng.random((n, d)) < rate
    return repair_bounds(np.where(mask, X + delta, X))


def repair_bounds(X: np.ndarray) -> np.ndarray:
    """Reflect values that left [0, 1] back inside (keeps the step's size, unlike clipping to the edge)."""
    X = np.where(X < 0, -X, X)
    X = np.where(X > 1, 2 - X, X)
    return np.clip(X, 0.0, 1.0)


def row_keys(X: np.ndarray, decimals: int = 9) -> list[bytes]:
    """Hashable keys of rows (rounded), for duplicate checks in O(n) instead of pairwise distances."""
    rounded = np.ascontiguousarray(np.round(X, decimals) + 0.0)  # + 0.0 folds -0.0 into 0.0
    return [row.tobytes() for row in rounded]


def duplicate_mask(X: np.ndarray, seen: set[bytes]) -> np.ndarray:
    """True for rows of X already in seen or repeating an earlier row of X."""
    keys = row_keys(X)
    mask = np.zeros(len(keys), dtype=bool)
    local: set[bytes] = set()
    for i, key in enumerate(keys):
        mask[i] = key in seen or key in local
        local.add(key)
    return mask


def dominates(F: np.ndarray) -> np.ndarray:
    """D[i, j] is True when i dominates j (no worse in every objective, better in one)."""
    le = (F[:, None, :] <= F[None, :, :]).all(axis=2)
    lt = (F[:, None, :] < F[None, :, :]).any(axis=2)
    return le & lt


def constrained_dominates(F: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """Deb's constrained domination: feasible beats infeasible; less violation beats more; else Pareto."""
    feasible = cv <= 0
    both = feasible[:, None] & feasible[None, :]
    neither = ~feasible[:, None] & ~feasible[None, :]
    return (both & dominates(F)) | (feasible[:, None] & ~feasible[None, :]) | (neither & (cv[:, None] < cv[None, :]))


def non_dominated_sort(F: np.ndarray, cv: np.ndarray | None = None) -> np.ndarray:
    """Front index (0 = non-dominated) of every row of F, peeling one front per iteration."""
    D = constrained_dominates(F, cv) if cv is not None and (cv > 0).any() else dominates(F)
    n_dominators = D.sum(axis=0)
    ranks = np.full(len(F), -1)
    current = np.flatnonzero(n_dominators == 0)
    front = 0
    while current.size:
        ranks[current] = front
        n_dominators = n_dominators - D[current].sum(axis=0)
        n_dominators[ranks >= 0] = -1
        current = np.flatnonzero(n_dominators == 0)
        front += 1
    return ranks


def crowding_distance(F: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within each front, all fronts at once; boundary points get infinity."""
    n, m = F.shape
    distance = np.zeros(n)
    for j in range(m):  # one pass per objective: sort by (front, value), neighbours must share the front
        order = np.lexsort((F[:, j], ranks))
        r, f = ranks[order], F[order, j]
        starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        sizes = np.diff(np.r_[starts, n])
        span = np.repeat(np.maximum.reduceat(f, starts) - np.minimum.reduceat(f, starts), sizes)
        span[span == 0] = 1.0
        first = np.zeros(n, dtype=bool)
        first[starts] = True
        last = np.zeros(n, dtype=bool)
        last[starts + sizes - 1] = True
        gap = np.full(n, np.inf)
        inner = ~(first | last)
        gap[inner] = (np.roll(f, -1)[inner] - np.roll(f, 1)[inner]) / span[inner]
        distance[order] += gap
    return distance


def survival_rank(F: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """A sort key (lower is better) for NSGA-II survival: front first, then larger crowding distance."""
    ranks = non_dominated_sort(F, cv)
    crowd = crowding_distance(F, ranks)
    order = np.lexsort((-crowd, ranks))
    key = np.empty(len(F))
    key[order] = np.arange(len(F))
    return key


def scalar_rank(f: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """Sort key for a single minimised objective: feasible first, then by violation, then by value."""
    order = np.lexsort((f, cv.clip(min=0)))
    key = np.empty(len(f))
    key[order] = np.arange(len(f))
    return key
