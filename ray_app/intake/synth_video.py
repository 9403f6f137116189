"""Synthetic videos of moving shapes with MOT-format ground truth, so tracking can be scored.

The shapes are synth_dataset's (circle, square, triangle on a noisy background), so a detector trained on the
synthetic images sees the same world. Each object enters through an edge, moves at a constant velocity and leaves
(or stays to the end); the camera is still. Two kinds of sequence:
- `parallel`: objects move horizontally in their own lanes, so no two paths ever cross (a perfect tracker keeps
  every identity: the id_switches goal);
- `crossing`: horizontal and vertical movers share the frame, so paths cross and shapes occlude each other.

Each sequence is written as `<name>.mp4` and, in the MOT Challenge layout that TrackEval reads,
`<name>/gt/gt.txt` (frame, id, left, top, width, height, 1, 1, visibility; frames and ids from 1) and
`<name>/seqinfo.ini`. The class column is 1 for every object: MOT evaluators (TrackEval, trackers.eval) score
class 1 only and treat classes 2, 7, 8 and 12 as distractors, so the shape's class is in events.json instead.
`<name>/events.json` lists, per object, its class, first and last frame and whether it
crossed the vertical middle line, and in which direction (the counts a line counter must reach).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from yoloforge.ray_app.intake.synth import CLASS_NAMES, _background, _colour, _polygon

KINDS = ("parallel", "crossing")


@dataclass
class Mover:
    track_id: int
    kind: int  # index into CLASS_NAMES
    radius: float
    angle: float
    colour: tuple[int, int, int]
    start: int  # first frame (0-based) it may be visible
    x0: float
    y0: float
    vx: float  # pixels per frame
    vy: float

    def centre(self, frame: int) -> tuple[float, float]:
        t = frame - self.start
        return self.x0 + self.vx * t, self.y0 + self.vy * t


def _movers(rng: np.random.Generator, kind: str, width: int, height: int, frames: int, objects: int,
            bg: np.ndarray, size: float | None = None) -> list[Mover]:
    movers = []
    lanes = max(1, objects)
    lane_h = height / lanes
    for i in range(objects):
        shape = int(rng.integers(0, len(CLASS_NAMES)))
        vertical = kind == "crossing" and i % 2 == 1
        if size is not None:  # the caller's size (a fraction of the frame's shorter side): lanes may touch
            radius = size * min(width, height)
        elif kind == "parallel":  # one lane each, the shape smaller than its lane: paths never meet
            radius = float(min(lane_h * 0.38, height * 0.18))
        else:
            radius = float(rng.uniform(0.08, 0.14) * min(width, height))
        speed = float(rng.uniform(3.0, 7.0)) * width / 320  # pixels per frame: 50-110 frames across
        start = int(rng.integers(0, max(1, frames // 3)))
        forward = bool(rng.integers(0, 2))
        if vertical:
            x0 = float(rng.uniform(0.25, 0.75) * width)
            y0, vy, vx = (-radius, speed, 0.0) if forward else (height + radius, -speed, 0.0)
        else:
            y0 = (i + 0.5) * lane_h if kind == "parallel" else float(rng.uniform(radius, height - radius))
            x0, vx, vy = (-radius, speed, 0.0) if forward else (width + radius, -speed, 0.0)
        movers.append(Mover(track_id=i + 1, kind=shape, radius=radius, angle=float(rng.uniform(0, 2 * np.pi)),
                            colour=_colour(rng, bg), start=start, x0=x0, y0=y0, vx=vx, vy=vy))
    return movers


def _render(background: Image.Image, movers: list[Mover], frame: int) -> tuple[np.ndarray, list[tuple]]:
    """The frame (RGB) and its ground-truth rows: (id, left, top, width, height, class, visibility)."""
    width, height = background.size
    image = background.copy()
    draw = ImageDraw.Draw(image)
    masks, rows = [], []
    for mover in movers:  # drawn in order: a later mover covers an earlier one
        if frame < mover.start:
            continue
        cx, cy = mover.centre(frame)
        poly = _polygon(mover.kind, cx, cy, mover.radius, mover.angle)
        (x1, y1), (x2, y2) = poly.min(0), poly.max(0)
        left, top, right, bottom = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if right - left < 2 or bottom - top < 2:  # not in view (yet, or any more)
            continue
        draw.polygon([tuple(p) for p in poly], fill=mover.colour)
        mask = Image.new("1", (width, height))
        ImageDraw.Draw(mask).polygon([tuple(p) for p in poly], fill=1)
        masks.append(np.asarray(mask))
        rows.append([mover.track_id, left, top, right - left, bottom - top, mover.kind + 1])
    visible = []
    for i, mask in enumerate(masks):
        covered = np.zeros_like(mask)
        for later in masks[i + 1:]:
            covered |= later
        area = mask.sum()
        visible.append(float((mask & ~covered).sum() / area) if area else 0.0)
    return np.asarray(image), [(*row, vis) for row, vis in zip(rows, visible, strict=True)]


def synth_video(out: str | Path, name: str, kind: str = "crossing", frames: int = 150, fps: int = 15,
                width: int = 320, height: int = 192, objects: int = 4, seed: int = 0,
                size: float | None = None) -> Path:
    """Write one sequence (see the module's docstring); returns the path of its .mp4. size: the shapes' radius as
    a fraction of the shorter side (default: what keeps parallel lanes apart, 0.08-0.14 when crossing)."""
    import cv2

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    background = _background(rng, max(width, height)).crop((0, 0, width, height))
    bg = np.asarray(background).reshape(-1, 3).mean(0)
    movers = _movers(rng, kind, width, height, frames, objects, bg, size)
    video = out / f"{name}.mp4"
    out.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {video} (no mp4v encoder in this build)")
    gt_lines, seen = [], {}
    try:
        for frame in range(frames):
            pixels, rows = _render(background, movers, frame)
            writer.write(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
            for track_id, left, top, w, h, _cls, vis in rows:
                gt_lines.append(f"{frame + 1},{track_id},{left:.2f},{top:.2f},{w:.2f},{h:.2f},1,1,{vis:.3f}")
                seen.setdefault(track_id, []).append(frame + 1)
    finally:
        writer.release()
    sequence = out / name
    (sequence / "gt").mkdir(parents=True, exist_ok=True)
    (sequence / "gt" / "gt.txt").write_text("\n".join(gt_lines) + "\n")
    (sequence / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={fps}\nseqLength={frames}\nimWidth={width}\n"
        f"imHeight={height}\nimExt=.jpg\n")
    events = []
    for mover in movers:
        if mover.track_id not in seen:
            continue
        first, last = seen[mover.track_id][0], seen[mover.track_id][-1]
        x_first, x_last = mover.centre(first - 1)[0], mover.centre(last - 1)[0]
        middle = width / 2
        crossed = None
        if (x_first - middle) * (x_last - middle) < 0:
            crossed = "left_to_right" if x_last > x_first else "right_to_left"
        events.append({"id": mover.track_id, "class": CLASS_NAMES[mover.kind], "first_frame": first,
                       "last_frame": last, "crossed_middle": crossed})
    (sequence / "events.json").write_text(json.dumps({"line_x": width / 2, "objects": events}, indent=2))
    return video


def synth_videos(out: str | Path, count: int = 4, frames: int = 150, fps: int = 15, width: int = 320,
                 height: int = 192, objects: int = 4, seed: int = 0) -> list[Path]:
    """`count` sequences, alternating parallel and crossing, named video_00, video_01, ..."""
    return [synth_video(out, f"video_{i:02d}", KINDS[i % 2], frames, fps, width, height, objects, seed + i)
            for i in range(count)]


def video_dataset(out: str | Path, videos: list[Path], every: int = 3, val_fraction: float = 0.2,
                  min_visibility: float = 0.3) -> Path:
    """A YOLO detection dataset of every `every`-th frame of synthetic videos (decoded, so it has the codec's
    artefacts) with the boxes of their ground truth: a detector for the videos' world. Returns its data.yaml."""
    import cv2
    import yaml

    out = Path(out)
    frame_no = 0
    for video in videos:
        sequence = video.with_suffix("")
        classes = {o["id"]: CLASS_NAMES.index(o["class"])
                   for o in json.loads((sequence / "events.json").read_text())["objects"]}
        rows: dict[int, list[list[float]]] = {}
        for line in (sequence / "gt" / "gt.txt").read_text().splitlines():
            f, i, left, top, w, h, _, _, vis = (float(v) for v in line.split(","))
            if vis >= min_visibility:
                rows.setdefault(int(f), []).append([classes[int(i)], left, top, w, h])
        capture = cv2.VideoCapture(str(video))
        n = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            n += 1
            if n % every:
                continue
            height, width = bgr.shape[:2]
            split = "val" if (frame_no % round(1 / val_fraction)) == 0 else "train"
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
            stem = f"{video.stem}_{n:05d}"
            cv2.imwrite(str(out / "images" / split / f"{stem}.jpg"), bgr)
            labels = [f"{c} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}"
                      for c, x, y, w, h in rows.get(n, [])]
            (out / "labels" / split / f"{stem}.txt").write_text("\n".join(labels) + ("\n" if labels else ""))
            frame_no += 1
        capture.release()
    data = out / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                                    "names": dict(enumerate(CLASS_NAMES))}))
    return data
