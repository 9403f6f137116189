"""Synthetic datasets of coloured shapes with exact labels, small enough to learn on 2 CPU cores.

Shapes are drawn from their polygons, so boxes and segment polygons agree with the pixels exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

CLASS_NAMES = ("circle", "square", "triangle")


def _polygon(kind: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Vertices (k, 2) in pixels of a circle (32-gon), square or triangle centred at (cx, cy)."""
    k = {0: 32, 1: 4, 2: 3}[kind]
    theta = angle + np.arange(k) * (2 * np.pi / k)
    return np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], axis=1)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    base = rng.integers(0, 256, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _colour(rng: np.random.Generator, avoid: np.ndarray) -> tuple[int, int, int]:
    """A saturated colour far enough from the background to be visible."""
    while True:
        c = rng.integers(0, 256, size=3)
        if np.abs(c - avoid).sum() > 180:
            return int(c[0]), int(c[1]), int(c[2])


def _place(rng: np.random.Generator, size: int, n: int) -> list[tuple[float, float, float]]:
    """Up to n non-overlapping circles (cx, cy, r) inside the image, by rejection sampling."""
    placed: list[tuple[float, float, float]] = []
    for _ in range(n * 20):
        if len(placed) == n:
            break
        r = rng.uniform(0.12, 0.24) * size
        cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
        if all((cx - x) ** 2 + (cy - y) ** 2 > (r + q + 2) ** 2 for x, y, q in placed):
            placed.append((float(cx), float(cy), float(r)))
    return placed


def _detect_image(
    rng: np.random.Generator, size: int, max_objects: int
) -> tuple[Image.Image, list[tuple[int, np.ndarray]]]:
    img = _background(rng, size)
    bg = np.asarray(img).reshape(-1, 3).mean(0)
    draw = ImageDraw.Draw(img)
    objects = []
    for cx, cy, r in _place(rng, size, int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(0, len(CLASS_NAMES)))
        poly = _polygon(kind, cx, cy, r, float(rng.uniform(0, 2 * np.pi)))
        draw.polygon([tuple(p) for p in poly], fill=_colour(rng, bg))
        objects.append((kind, poly))
    return img, objects


def _label_lines(objects: list[tuple[int, np.ndarray]], size: int, task: str) -> list[str]:
    lines = []
    for kind, poly in objects:
        p = np.clip(poly / size, 0, 1)
        if task == "segment":
            lines.append(f"{kind} " + " ".join(f"{v:.6f}" for v in p.reshape(-1)))
        else:
            (x1, y1), (x2, y2) = p.min(0), p.max(0)
            lines.append(f"{kind} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    return lines


def synth_dataset(
    out: str | Path,
    task: str = "detect",
    n_train: int = 64,
    n_val: int = 32,
    imgsz: int = 128,
    seed: int = 0,
    max_objects: int = 3,
    on_image: Callable[[], None] | None = None,
) -> Path:
    """Write a dataset in Ultralytics' layout for the task and return its root (data.yaml inside for detect/segment)."""
    if task not in ("detect", "segment", "classify"):
        raise ValueError(f"task must be detect, segment or classify, not {task!r}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            if task == "classify":
                kind = i % len(CLASS_NAMES)
                img = _background(rng, imgsz)
                bg = np.asarray(img).reshape(-1, 3).mean(0)
                r = rng.uniform(0.25, 0.4) * imgsz
                cx, cy = rng.uniform(r + 1, imgsz - r - 1, size=2)
                poly = _polygon(kind, cx, cy, r, float(rng.uniform(0, 2 * np.pi)))
                ImageDraw.Draw(img).polygon([tuple(p) for p in poly], fill=_colour(rng, bg))
                path = root / split / CLASS_NAMES[kind] / f"{split}_{i:05d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                img.save(path, quality=95)
            else:
                img, objects = _detect_image(rng, imgsz, max_objects)
                img_path = root / "images" / split / f"{split}_{i:05d}.jpg"
                lbl_path = root / "labels" / split / f"{split}_{i:05d}.txt"
                img_path.parent.mkdir(parents=True, exist_ok=True)
                lbl_path.parent.mkdir(parents=True, exist_ok=True)
                img.save(img_path, quality=95)
                lbl_path.write_text("\n".join(_label_lines(objects, imgsz, task)) + "\n")
            if on_image:
                on_image()
    if task != "classify":
        data = {"path": str(root.resolve()), "train": "images/train", "val": "images/val",
                "names": dict(enumerate(CLASS_NAMES))}
        (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root
