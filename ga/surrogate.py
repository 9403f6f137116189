"""Cheap models of the response surface, fitted to every finished trial, that rank candidate children before any
is trained (surrogate-assisted evolution). Pure numpy, on the GA's [0, 1]^d encoding; higher score = more
promising. Each is fitted on observations to minimise (the GA's first objective); failed trials (inf) count as
the worst seen.

- GaussianProcess: GP regression with an RBF kernel (one length scale and a noise level, picked from a small grid
  by marginal likelihood), ranked by expected improvement over the best mean; a batch is chosen greedily, each
  pick believed at its predicted mean (the kriging believer), so a generation spreads over the model's peaks
  instead of piling onto one.
- DensityRatio: TPE's model (Bergstra et al. 2011): the best gamma share of the trials against the rest, each a
  Parzen estimator (Gaussian kernels plus a uniform prior component), ranked by log l(x) - log g(x).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

LENGTH_SCALES = (0.05, 0.1, 0.2, 0.4, 0.8)  # in the unit cube, times sqrt(d) (distances grow with d)
NOISE_LEVELS = (1e-3, 1e-2, 1e-1)  # variance, relative to the standardised observations


class Surrogate(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate: ...

    def score(self, X: np.ndarray) -> np.ndarray: ...

    def choose(self, pool: np.ndarray, k: int, pending: np.ndarray | None = None) -> np.ndarray: ...


def _finite_targets(y: np.ndarray) -> np.ndarray:
    """Failed trials (inf, NaN) as the worst finite value seen (all failed: zeros)."""
    y = np.asarray(y, dtype=float).reshape(-1)
    finite = np.isfinite(y)
    return np.where(finite, y, y[finite].max() if finite.any() else 0.0)


def _sq_dist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.maximum((A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2 * A @ B.T, 0.0)


class GaussianProcess:
    def fit(self, X: np.ndarray, y: np.ndarray) -> GaussianProcess:
        y = _finite_targets(y)
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mean) / self.scale
        self.X, d2 = np.asarray(X, dtype=float), _sq_dist(X, X)
        n, best = len(z), -np.inf
        for ls in LENGTH_SCALES:
            length = ls * math.sqrt(X.shape[1])
            K = np.exp(-0.5 * d2 / length**2)
            for noise in NOISE_LEVELS:
                try:
                    L = np.linalg.cholesky(K + noise * np.eye(n))
                except np.linalg.LinAlgError:
                    continue
                alpha = np.linalg.solve(L.T, np.linalg.solve(L, z))
                evidence = -0.5 * z @ alpha - np.log(np.diag(L)).sum()  # log marginal likelihood, less a constant
                if evidence > best:
                    best, self.length, self.noise, self.L, self.alpha = evidence, length, noise, L, alpha
        self.best_mean = float(self.predict(self.X)[0].min())
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation, in the observations' units."""
        Ks = np.exp(-0.5 * _sq_dist(np.asarray(X, dtype=float), self.X) / self.length**2)
        mu = Ks @ self.alpha
        v = np.linalg.solve(self.L, Ks.T)
        sd = np.sqrt(np.maximum(1.0 - (v**2).sum(0), 1e-12))
        return self.mean + self.scale * mu, self.scale * sd

    def score(self, X: np.ndarray) -> np.ndarray:
        """Expected improvement (minimising) below the best predicted mean among the observations."""
        mu, sd = self.predict(X)
        return _expected_improvement(self.best_mean, mu, sd)

    def choose(self, pool: np.ndarray, k: int, pending: np.ndarray | None = None) -> np.ndarray:
        """Indices of k pool points, greedily by expected improvement, each pick then believed observed at its
        predicted mean (Ginsbourger et al. 2010): the means stay, the pick's neighbours lose variance and so
        expected improvement, and the next pick goes elsewhere. Ranking by EI alone sent a generation's children
        to one peak. `pending` points (trials running, no result yet) are believed first, as earlier picks.
        Exact rank-one updates of the posterior covariance, O((k + pending) x pool x observations)."""
        n_pending = 0 if pending is None else len(pending)
        points = np.asarray(pool if not n_pending else np.vstack([pending, pool]), dtype=float)
        k = min(k, len(points) - n_pending)
        Ks = np.exp(-0.5 * _sq_dist(points, self.X) / self.length**2)
        V = np.linalg.solve(self.L, Ks.T)  # observations x points
        mu = self.mean + self.scale * (Ks @ self.alpha)
        var = np.maximum(1.0 - (V**2).sum(0), 1e-12)  # standardised units, as the noise
        picked: list[int] = []
        updates: list[tuple[np.ndarray, float]] = []  # (posterior covariance with a pick, its variance + noise)
        for step in range(n_pending + k):
            if step < n_pending:
                j = step
            else:
                ei = _expected_improvement(self.best_mean, mu, self.scale * np.sqrt(var))
                ei[picked] = -np.inf
                j = int(np.argmax(ei))
            picked.append(j)
            cov = np.exp(-0.5 * _sq_dist(points, points[j : j + 1])[:, 0] / self.length**2) - V.T @ V[:, j]
            for c, d in updates:
                cov -= c * c[j] / d
            d = float(var[j]) + self.noise
            updates.append((cov, d))
            var = np.maximum(var - cov**2 / d, 1e-12)
        return np.array(picked[n_pending:], dtype=int) - n_pending


class DensityRatio:
    def __init__(self, gamma: float = 0.25) -> None:
        self.gamma = gamma

    def fit(self, X: np.ndarray, y: np.ndarray) -> DensityRatio:
        y = _finite_targets(y)
        X = np.asarray(X, dtype=float)
        n_good = max(1, min(len(y) - 1, math.ceil(self.gamma * len(y))))
        order = np.argsort(y, kind="stable")
        self.good, self.bad = X[order[:n_good]], X[order[n_good:]]
        return self

    @staticmethod
    def _log_density(X: np.ndarray, points: np.ndarray) -> np.ndarray:
        """A Parzen estimator on the unit cube: Gaussian kernels (Scott's bandwidth per dimension, at least 0.05)
        and one uniform component, equally weighted, so few points never make a confident model."""
        n, d = points.shape
        spread = points.std(0) if n > 1 else np.full(d, 0.5)
        h = np.clip(spread * n ** (-1 / (d + 4)), 0.05, 0.5)
        diff = (X[:, None, :] - points[None, :, :]) / h
        log_k = -0.5 * (diff**2).sum(-1) - np.log(h).sum() - 0.5 * d * math.log(2 * math.pi)
        log_all = np.concatenate([log_k, np.zeros((len(X), 1))], axis=1)  # the uniform prior: density 1
        top = log_all.max(1, keepdims=True)
        return (top[:, 0] + np.log(np.exp(log_all - top).sum(1))) - math.log(n + 1)

    def score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return self._log_density(X, self.good) - self._log_density(X, self.bad)

    def choose(self, pool: np.ndarray, k: int, pending: np.ndarray | None = None) -> np.ndarray:
        """The k best-scored pool points (TPE's own batch: its density ratio has no variance to condition, so
        pending points change nothing)."""
        return np.argsort(-self.score(pool), kind="stable")[:k]


def _expected_improvement(best: float, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    u = (best - mu) / sd
    cdf = 0.5 * (1 + _erf(u / math.sqrt(2)))
    pdf = np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi)
    return sd * (u * cdf + pdf)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[float])(x)


SURROGATES = {"gp": GaussianProcess, "tpe": DensityRatio}
# children bred a place and the share trained whatever the model says, measured by scripts/bench_ga.py against
# other pool sizes and shares, and the GP against the plain GA and TPE's density ratio (docs/ga.md)
CANDIDATES, EXPLORE = 32, 0.125
ASSISTED = {"surrogate": "gp", "candidates": CANDIDATES, "explore": EXPLORE}  # what the search runs with


def make_surrogate(name: str) -> Surrogate:
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}: one of {', '.join(SURROGATES)}")
    return SURROGATES[name]()
