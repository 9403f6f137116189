"""Parse and repair one YOLO label file (detect boxes or segment polygons). Pure: text in, verdict out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLIP_TOLERANCE = 0.01  # coordinates up to 1% outside [0, 1] are rounding noise from labelling tools
MIN_BOX_PX = 1.0


@dataclass
class LabelIssue:
    code: str
    message: str
    line: int | None = None


@dataclass
class LabelResult:
    """quarantine: the file cannot be trusted; otherwise clean_text is the repaired label to train on."""

    quarantine: bool = False
    clean_text: str = ""
    # one row per kept object: class id, box width and height in pixels
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    issues: list[LabelIssue] = field(default_factory=list)


def _polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _format_row(cls: int, coords: np.ndarray) -> str:
    return f"{cls} " + " ".join(f"{v:.6g}" for v in coords)


def check_label_text(text: str, nc: int, task: str, width: int, height: int) -> LabelResult:
    """Validate one label file for an image of width x height pixels with nc classes."""
    result = LabelResult()
    expected = "5 values: class x_center y_center width height" if task == "detect" else \
        "an odd count of at least 7 values: class x1 y1 x2 y2 x3 y3 ..."
    kept: list[str] = []
    seen: set[str] = set()
    boxes: list[tuple[int, float, float]] = []
    clipped_line = degenerate_line = duplicate_line = None
    n_degenerate = n_duplicate = 0

    def fail(code: str, message: str, line: int) -> LabelResult:
        result.quarantine = True
        result.issues.append(LabelIssue(code, message, line))
        return result

    for lineno, raw in enumerate(text.splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        try:
            values = np.array([float(p) for p in parts])
        except ValueError:
            bad = next(p for p in parts if not _is_float(p))
            return fail("not_a_number", f"'{bad}' is not a number", lineno)
        if not np.isfinite(values).all():
            return fail("not_a_number", "contains nan or inf", lineno)
        n = len(values)
        is_box, is_poly = n == 5, n >= 7 and n % 2 == 1
        if task == "segment" and is_box:
            return fail("box_only_in_segment", "a box (5 values) in a segmentation dataset", lineno)
        if not (is_box or is_poly):
            return fail("bad_columns", f"{n} values; expected {expected}", lineno)
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < nc:
            return fail("class_out_of_range",
                        f"class id {parts[0]} but data.yaml names {nc} classes (ids 0..{nc - 1})",
                        lineno)
        coords = values[1:]
        lo, hi = coords.min(), coords.max()
        if lo < -CLIP_TOLERANCE or hi > 1 + CLIP_TOLERANCE:
            hint = f" (max {hi:g}: looks like pixels, not fractions)" if hi > 2 else ""
            return fail("coords_out_of_range",
                        f"coordinates outside [0, 1]: min {lo:g}, max {hi:g}{hint}", lineno)
        if lo < 0 or hi > 1:
            coords = np.clip(coords, 0, 1)
            clipped_line = clipped_line or lineno
        if is_box:
            w_px, h_px = coords[2] * width, coords[3] * height
            degenerate = w_px < MIN_BOX_PX or h_px < MIN_BOX_PX
        else:
            xy = coords.reshape(-1, 2)
            span = xy.max(0) - xy.min(0)
            w_px, h_px = span[0] * width, span[1] * height
            degenerate = _polygon_area(xy * [width, height]) < MIN_BOX_PX or min(w_px, h_px) < MIN_BOX_PX
        if degenerate:
            n_degenerate += 1
            degenerate_line = degenerate_line or lineno
            continue
        row = _format_row(int(cls), coords)
        if row in seen:
            n_duplicate += 1
            duplicate_line = duplicate_line or lineno
            continue
        seen.add(row)
        kept.append(row)
        boxes.append((int(cls), float(w_px), float(h_px)))

    if clipped_line:
        result.issues.append(LabelIssue("coords_clipped", f"line {clipped_line}: coordinates slightly outside "
                                        f"[0, 1] (within {CLIP_TOLERANCE}) were clipped", clipped_line))
    if n_degenerate:
        result.issues.append(LabelIssue("degenerate_box", f"{n_degenerate} zero-size object(s) dropped, first "
                                        f"on line {degenerate_line} (under {MIN_BOX_PX:g} px)", degenerate_line))
    if n_duplicate:
        result.issues.append(LabelIssue("duplicate_row", f"{n_duplicate} duplicate line(s) dropped, first on "
                                        f"line {duplicate_line}", duplicate_line))
    result.clean_text = "\n".join(kept) + ("\n" if kept else "")
    result.boxes = np.array(boxes, dtype=float).reshape(-1, 3)
    return result


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def looks_like_segment(texts: list[str]) -> bool:
    """Most label rows are polygons (more than 5 values)."""
    n_poly = n_box = 0
    for text in texts:
        for raw in text.splitlines():
            n = len(raw.split())
            n_poly += n >= 7
            n_box += n == 5
    return n_poly > n_box
