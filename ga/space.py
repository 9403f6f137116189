"""Search spaces: genes of four kinds, and whole populations encoded to and from [0, 1]^d.

Every gene lives in [0, 1] inside the GA, so operators never need to know about scales: a log-float is
uniform in log space, an int or a category owns an equal-width bin of [0, 1].
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

Kind = Literal["float", "log", "int", "cat"]


@dataclass(frozen=True)
class Gene:
    name: str
    kind: Kind
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "cat":
            if len(self.choices) < 1:
                raise ValueError(f"gene {self.name}: a categorical gene needs choices")
        elif not self.low < self.high:
            raise ValueError(f"gene {self.name}: low ({self.low}) must be below high ({self.high})")
        if self.kind == "log" and self.low <= 0:
            raise ValueError(f"gene {self.name}: a log-scaled gene needs low > 0, got {self.low}")

    @property
    def bins(self) -> int:
        """Number of distinct values for discrete genes (0 for continuous ones)."""
        if self.kind == "cat":
            return len(self.choices)
        if self.kind == "int":
            return int(self.high) - int(self.low) + 1
        return 0

    def encode(self, values: np.ndarray | Sequence[Any]) -> np.ndarray:
        if self.kind == "cat":
            index = {c: k for k, c in enumerate(self.choices)}
            try:
                idx = np.array([index[v] for v in values], dtype=float)
            except KeyError as err:
                raise ValueError(f"gene {self.name}: {err.args[0]!r} is not one of {list(self.choices)}") from None
            return (idx + 0.5) / self.bins
        v = np.asarray(values, dtype=float)
        if self.kind == "log":
            return (np.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        if self.kind == "int":
            return (np.round(v) - int(self.low) + 0.5) / self.bins
        return (v - self.low) / (self.high - self.low)

    def decode(self, x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0.0, 1.0)
        if self.kind in ("cat", "int"):
            idx = np.minimum((x * self.bins).astype(int), self.bins - 1)
            return np.asarray(self.choices, dtype=object)[idx] if self.kind == "cat" else idx + int(self.low)
        if self.kind == "log":
            value = np.exp(math.log(self.low) + x * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + x * (self.high - self.low)
        return np.clip(value, self.low, self.high)  # exp/log rounding must not step outside the bounds

    def snap(self, x: np.ndarray) -> np.ndarray:
        """Move discrete genes to their bin centre, so equal decoded values have equal encodings."""
        if not self.bins:
            return x
        return (np.minimum((np.clip(x, 0, 1) * self.bins).astype(int), self.bins - 1) + 0.5) / self.bins


@dataclass(frozen=True)
class SearchSpace:
    """The searched genes, plus genes fixed to one value (returned in every config, never searched)."""

    genes: tuple[Gene, ...]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [g.name for g in self.genes]
        if len(set(names)) != len(names):
            raise ValueError("gene names must be unique")
        if not names:
            raise ValueError("the search space has no genes to search")

    @property
    def dim(self) -> int:
        return len(self.genes)

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.genes]

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(n, d) array in [0, 1] for n configs."""
        return np.stack([g.encode([c[g.name] for c in configs]) for g in self.genes], axis=1).reshape(-1, self.dim)

    def decode(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Configs for the rows of X: one vectorised pass per gene kind, then plain Python values."""
        X = np.clip(X, 0.0, 1.0)
        lo, hi, bins = self._bounds
        span = np.where(self._is_log, np.log(np.where(self._is_log, hi, 1) / np.where(self._is_log, lo, 1)), hi - lo)
        values = np.where(self._is_log, lo * np.exp(X * span), lo + X * span)
        values = np.clip(values, lo, hi)  # exp/log rounding must not step outside the bounds
        index = np.minimum((X * np.maximum(bins, 1)).astype(int), np.maximum(bins - 1, 0))
        columns: list[list[Any]] = []
        for j, g in enumerate(self.genes):
            if g.kind == "cat":
                columns.append([g.choices[k] for k in index[:, j]])
            elif g.kind == "int":
                columns.append((index[:, j] + int(g.low)).tolist())
            else:
                columns.append(values[:, j].tolist())
        names = self.names
        return [{**self.fixed, **dict(zip(names, row, strict=True))} for row in zip(*columns, strict=True)]

    def snap(self, X: np.ndarray) -> np.ndarray:
        """Discrete genes to their bin centres (see Gene.snap), all columns at once."""
        bins = self._bounds[2]
        if not bins.any():
            return X
        b = np.maximum(bins, 1)
        centred = (np.minimum((np.clip(X, 0, 1) * b).astype(int), b - 1) + 0.5) / b
        return np.where(bins > 0, centred, X)

    @functools.cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo = np.array([g.low if g.kind != "cat" else 0.0 for g in self.genes], dtype=float)
        hi = np.array([g.high if g.kind != "cat" else 1.0 for g in self.genes], dtype=float)
        return lo, hi, np.array([g.bins for g in self.genes])

    @functools.cached_property
    def _is_log(self) -> np.ndarray:
        return np.array([g.kind == "log" for g in self.genes])

    def to_json(self) -> dict[str, Any]:
        return {"genes": [{"name": g.name, "kind": g.kind, "low": g.low, "high": g.high, "choices": list(g.choices)}
                          for g in self.genes], "fixed": dict(self.fixed)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SearchSpace:
        return cls(tuple(Gene(g["name"], g["kind"], g["low"], g["high"], tuple(g["choices"])) for g in data["genes"]),
                   dict(data["fixed"]))

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
        """Narrow, widen (low/high), restrict (choices) or fix (value) genes by name."""
        genes = {g.name: g for g in self.genes}
        fixed = dict(self.fixed)
        for name, change in overrides.items():
            if name not in genes and name not in fixed:
                raise ValueError(f"unknown gene '{name}'; genes: {', '.join([*genes, *fixed])}")
            change = {k: v for k, v in change.items() if v is not None}
            if "value" in change:
                genes.pop(name, None)
                fixed[name] = change["value"]
                continue
            gene = genes[name]
            if gene.kind == "cat" and "choices" not in change and ("low" in change or "high" in change):
                raise ValueError(f"gene '{name}' is categorical ({list(gene.choices)}): give choices, not low/high")
            if "choices" in change:
                gene = replace(gene, kind="cat", choices=tuple(change["choices"]))
            gene = replace(gene, low=change.get("low", gene.low), high=change.get("high", gene.high))
            genes[name] = gene
        return SearchSpace(tuple(genes.values()), fixed)
