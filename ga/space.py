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


def yolo_space(include_imgsz: bool = False, include_batch: bool = False) -> SearchSpace:
    """Ultralytics training hyperparameters with bounds from its own tuner, plus the optimizer.

    The optimizer is a gene because on small data it decides more than everything else (SGD with mosaic
    learns nothing in 15 epochs where AdamW without mosaic reaches mAP50 0.77).
    """
    genes = [
        Gene("optimizer", "cat", choices=("SGD", "AdamW", "Adam")),
        Gene("lr0", "log", 1e-5, 1e-1),
        Gene("lrf", "float", 0.01, 1.0),
        Gene("momentum", "float", 0.6, 0.98),
        Gene("weight_decay", "log", 1e-6, 1e-2),
        Gene("warmup_epochs", "float", 0.0, 5.0),
        Gene("box", "float", 1.0, 20.0),
        Gene("cls", "float", 0.2, 4.0),
        Gene("dfl", "float", 0.4, 6.0),
        Gene("hsv_h", "float", 0.0, 0.1),
        Gene("hsv_s", "float", 0.0, 0.9),
        Gene("hsv_v", "float", 0.0, 0.9),
        Gene("degrees", "float", 0.0, 45.0),
        Gene("translate", "float", 0.0, 0.9),
        Gene("scale", "float", 0.0, 0.9),
        Gene("fliplr", "float", 0.0, 1.0),
        Gene("mosaic", "float", 0.0, 1.0),
        Gene("mixup", "float", 0.0, 1.0),
    ]
    if include_imgsz:
        genes.append(Gene("imgsz", "cat", choices=(320, 416, 512, 640)))
    if include_batch:
        genes.append(Gene("batch", "cat", choices=(8, 16, 32, 64)))
    return SearchSpace(tuple(genes))


# Ultralytics' defaults for the searched genes: the first individual, so the search starts from the baseline
# a user would otherwise get (kept only where it fits the job's space). The optimizer is AdamW, as
# model.tune() sets it and as optimizer=auto picks for short trainings.
ULTRALYTICS_DEFAULTS: dict[str, Any] = {
    # what Ultralytics' trainer resolves optimizer=auto to for trainings under 10k iterations (every trial):
    # AdamW with momentum 0.9 and lr0 fitted to the number of classes (see auto_lr0)
    "optimizer": "AdamW", "lr0": 0.001429, "lrf": 0.01, "momentum": 0.9, "weight_decay": 0.0005, "warmup_epochs": 3.0,
    "box": 7.5, "cls": 0.5, "dfl": 1.5, "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4, "degrees": 0.0,
    "translate": 0.1, "scale": 0.5, "fliplr": 0.5, "mosaic": 1.0, "mixup": 0.0,
}


def auto_lr0(nc: int) -> float:
    """Ultralytics' optimizer=auto learning rate for AdamW: round(0.002 * 5 / (4 + nc), 6)."""
    return round(0.002 * 5 / (4 + nc), 6)


# Ultralytics' optimizer=auto picks SGD only for trainings of more than 10,000 iterations: its line between short
# trainings and long ones, used here for every rule that depends on training length
SHORT_TRAINING_ITERATIONS = 10_000


def is_short_training(iterations: int | None) -> bool:
    return iterations is not None and iterations <= SHORT_TRAINING_ITERATIONS


# half a decade: the step of the learning-rate factor in short_training_starts
LR0_STEP = 10 ** 0.5


def short_training_starts(start: Mapping[str, Any], task: str) -> list[dict[str, Any]]:
    """Starting points that screen the two settings deciding a short training, with `start` they form a 2x2 design.

    A training of a few hundred steps is decided by how fast it learns, and two of Ultralytics' defaults are made
    for long ones: lr0 (fitted to trainings of 10k+ steps) and mosaic (which only Ultralytics' last 10 epochs turn
    off). Measured on the synthetic shapes, 25 epochs of 4 batches, 3 training seeds (fitness 0.1 mAP50 + 0.9
    mAP50-95, mean): defaults 0.036, lr0 x3 0.087, mosaic off 0.023, both 0.162 - an interaction that mutants
    moving one gene at a time from the defaults rarely find. The design (both factors first) costs at most three
    trials of the first generation; the search moves on from whichever cell wins. mosaic only applies to detect and
    segment trainings, so classify gets the learning-rate factor alone."""
    faster = {**start, "lr0": start["lr0"] * LR0_STEP}
    if task == "classify":
        return [faster]
    return [{**faster, "mosaic": 0.0}, faster, {**start, "mosaic": 0.0}]


def for_training_length(space: SearchSpace, iterations: int | None) -> SearchSpace:
    """The space without SGD among the optimizers when trainings are too short for it (Ultralytics' own rule).

    SGD needs a learning rate about ten times Adam's and many more steps; in a short trial at an Adam-sized lr0
    it learns nothing (measured: bench_search, 25 epochs of 4 batches, every SGD trial scored 0), so each SGD
    draw wastes a trial of a small budget. Kept when it is the only choice left."""
    if not is_short_training(iterations):
        return space
    genes = []
    for gene in space.genes:
        if gene.name == "optimizer" and gene.kind == "cat" and "SGD" in gene.choices and len(gene.choices) > 1:
            gene = replace(gene, choices=tuple(c for c in gene.choices if c != "SGD"))
        genes.append(gene)
    return SearchSpace(tuple(genes), space.fixed)
