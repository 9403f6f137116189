"""Objectives from trial metrics: a weighted fitness with compute penalties, and targets as constraints."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Ultralytics' own fitness for detection
DEFAULT_WEIGHTS = {"mAP50": 0.1, "mAP50-95": 0.9}


def weighted_fitness(metrics: Mapping[str, np.ndarray], weights: Mapping[str, float] = DEFAULT_WEIGHTS,
                     costs: Mapping[str, np.ndarray] | None = None,
                     penalties: Mapping[str, float] | None = None) -> np.ndarray:
    """sum(w * metric) - sum(p * cost), vectorised over trials; a missing or NaN metric gives -inf (worst)."""
    n = len(next(iter(metrics.values()))) if metrics else 0
    total = np.zeros(n)
    for name, w in weights.items():
        total = total + w * np.asarray(metrics.get(name, np.full(n, np.nan)), dtype=float)
    for name, p in (penalties or {}).items():
        total = total - p * np.asarray((costs or {}).get(name, np.full(n, np.nan)), dtype=float)
    return np.where(np.isfinite(total), total, -np.inf)


def target_violation(values: Mapping[str, np.ndarray], minimums: Mapping[str, float] | None = None,
                     maximums: Mapping[str, float] | None = None) -> np.ndarray:
    """Sum of relative shortfalls against targets (0 = every target met); NaN counts as missing by 100%."""
    n = len(next(iter(values.values()))) if values else 0
    cv = np.zeros(n)
    for name, floor in (minimums or {}).items():
        v = np.asarray(values.get(name, np.full(n, np.nan)), dtype=float)
        cv += np.where(np.isfinite(v), np.maximum(0.0, floor - v) / max(abs(floor), 1e-12), 1.0)
    for name, ceiling in (maximums or {}).items():
        v = np.asarray(values.get(name, np.full(n, np.nan)), dtype=float)
        cv += np.where(np.isfinite(v), np.maximum(0.0, v - ceiling) / max(abs(ceiling), 1e-12), 1.0)
    return cv
