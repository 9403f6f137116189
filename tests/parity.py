"""Detection parity between two implementations of one model, robust to the last bits of floating point.

Two correct implementations agree on every box that is clearly inside the thresholds. A box whose score sits at
the confidence threshold, or at the max_det cut, may be kept by one and dropped by the other when its score moves
in the last bits (CPU, thread count, instruction set), and so may the boxes it then suppresses. So only the boxes
with a margin above both cuts are required to have a twin, and twins are paired by optimal assignment on IoU and
class, which cannot hand a box the wrong twin the way a greedy nearest match can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from yoloforge.engines.processing import box_iou_one

# 10x the score tolerance: a box this far above a cut is above it in both implementations
SCORE_MARGIN = 0.01


@dataclass(frozen=True)
class Boxes:
    xyxy: np.ndarray  # (N, 4) pixels
    classes: np.ndarray  # (N,)
    scores: np.ndarray  # (N,)

    @classmethod
    def of(cls, xyxy, classes, scores) -> Boxes:  # type: ignore[no-untyped-def]
        return cls(np.asarray(xyxy, np.float64).reshape(-1, 4), np.asarray(classes, np.int64).reshape(-1),
                   np.asarray(scores, np.float64).reshape(-1))


def _floor(side: Boxes, conf: float, max_det: int | None) -> float:
    """The score above which this side's set of boxes does not depend on the last bits."""
    floor = conf + SCORE_MARGIN
    if max_det is not None and len(side.scores) >= max_det:  # cut by max_det: the cut is a threshold too
        floor = max(floor, float(side.scores.min()) + SCORE_MARGIN)
    return floor


def match_detections(ours: Boxes, theirs: Boxes, *, conf: float, max_det: int | None = 300,
                     min_iou: float = 0.99, score_tol: float = 1e-3) -> list[tuple[int, int]]:
    """Pairs (our index, their index) of every box clearly inside the thresholds on either side; asserts each has
    a twin on the other side with IoU >= min_iou, the same class and a score within score_tol."""
    if not len(ours.scores) or not len(theirs.scores):
        floor = max(_floor(ours, conf, max_det), _floor(theirs, conf, max_det))
        assert not (ours.scores >= floor).any() and not (theirs.scores >= floor).any(), "a confident box has no twin"
        return []
    iou = np.stack([box_iou_one(box, ours.xyxy) for box in theirs.xyxy], axis=1)  # (ours, theirs)
    same_class = ours.classes[:, None] == theirs.classes[None, :]
    rows, cols = linear_sum_assignment(-(iou + same_class))
    partner_of_ours = dict(zip(rows.tolist(), cols.tolist(), strict=True))
    partner_of_theirs = {c: r for r, c in partner_of_ours.items()}
    floor = max(_floor(ours, conf, max_det), _floor(theirs, conf, max_det))
    pairs = set()
    for i in np.flatnonzero(ours.scores >= floor).tolist():
        assert i in partner_of_ours, f"our box {i} (score {ours.scores[i]:.4f}) has no twin"
        pairs.add((i, partner_of_ours[i]))
    for j in np.flatnonzero(theirs.scores >= floor).tolist():
        assert j in partner_of_theirs, f"their box {j} (score {theirs.scores[j]:.4f}) has no twin"
        pairs.add((partner_of_theirs[j], j))
    for i, j in sorted(pairs):
        assert iou[i, j] >= min_iou, (f"box {ours.xyxy[i]} (score {ours.scores[i]:.4f}) vs its twin "
                                      f"{theirs.xyxy[j]} (score {theirs.scores[j]:.4f}): IoU {iou[i, j]:.4f}")
        assert ours.classes[i] == theirs.classes[j], f"class {ours.classes[i]} vs {theirs.classes[j]}"
        assert abs(ours.scores[i] - theirs.scores[j]) <= score_tol, (ours.scores[i], theirs.scores[j])
    return sorted(pairs)
