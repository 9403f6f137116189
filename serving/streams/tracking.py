"""Per stream: the tracker (trackers' ByteTrack), the line and zone counters (supervision's LineZone; zones
by a point-in-polygon test), and drawing — three separate steps, each on one frame's result.

Chosen: Roboflow's `trackers` (Apache-2.0, maintained, clean-room ByteTrack whose ID allocator lives in each
tracker instance, so IDs start at 1 in every stream and never leak between streams; it takes timestamps, so a
frame dropped under load is a gap in time, not a skipped step) and `supervision` (its dependency) for counting
and drawing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv
from matplotlib.path import Path as MplPath
from trackers import ByteTrackTracker
from yoloforge.engines.base import Prediction

ByteTrackFPS = 30.0  # trackers' lost_track_buffer is counted in frames at 30 FPS


@dataclass(frozen=True)
class Line:
    """A counting line in the source's pixels: an object crossing it is counted in one direction or the other
    (supervision's convention: "in" is crossing from the right of start→end to its left)."""

    name: str
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class Zone:
    """A polygon in the source's pixels: objects whose box's bottom centre is inside are counted."""

    name: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class TrackerSettings:
    lost_s: float = 1.0  # a lost track is kept this long (seconds of the source) for re-association
    activation: float = 0.5  # a detection must be this confident to start a track
    high: float = 0.5  # ByteTrack's first (high-confidence) association; lower detections only extend tracks
    match_iou: float = 0.1
    min_frames: int = 2  # consecutive detections before a track gets an ID


@dataclass
class Tracked:
    """One frame's tracked objects: IDs from 1 in each stream."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # x1 y1 x2 y2, source pixels
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def detections(self) -> sv.Detections:
        return sv.Detections(xyxy=self.boxes.astype(np.float32).reshape(-1, 4), confidence=self.scores,
                             class_id=self.classes, tracker_id=self.ids)


class StreamTracker:
    """Detections of one stream's frames, in order → tracked objects with stable IDs."""

    def __init__(self, settings: TrackerSettings, frame_rate: float) -> None:
        self.settings = settings
        self.tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(settings.lost_s * ByteTrackFPS)), frame_rate=frame_rate or ByteTrackFPS,
            track_activation_threshold=settings.activation, minimum_consecutive_frames=settings.min_frames,
            minimum_iou_threshold=settings.match_iou, high_conf_det_threshold=settings.high)

    def update(self, prediction: Prediction, media_s: float) -> Tracked:
        detections = sv.Detections(xyxy=prediction.boxes.astype(np.float32).reshape(-1, 4),
                                   confidence=prediction.scores.astype(np.float32),
                                   class_id=prediction.classes.astype(np.int64))
        result = self.tracker.update(detections, timestamp=media_s)
        ids = np.asarray(result.tracker_id if result.tracker_id is not None else [], np.int64)
        keep = ids >= 0  # detections not (yet) part of a confirmed track
        if len(result) == 0 or not keep.any():
            return Tracked()
        return Tracked(ids=ids[keep] + 1, boxes=result.xyxy[keep].astype(np.float32),
                       scores=np.asarray(result.confidence, np.float32)[keep],
                       classes=np.asarray(result.class_id, np.int64)[keep])


class Counters:
    """Line crossings and zone occupancy of one stream, updated frame by frame from its tracked objects."""

    def __init__(self, lines: tuple[Line, ...] = (), zones: tuple[Zone, ...] = ()) -> None:
        self.lines = {line.name: sv.LineZone(start=sv.Point(*line.start), end=sv.Point(*line.end))
                      for line in lines}
        # a point-in-polygon test on each box's bottom centre: supervision's PolygonZone rasterises a mask as large
        # as the polygon's extent, which a zone given in large coordinates turns into gigabytes
        self.zones = {zone.name: MplPath(np.array(zone.points, np.float64)) for zone in zones}
        self.zone_now = dict.fromkeys(self.zones, 0)
        self.zone_seen: dict[str, set[int]] = {name: set() for name in self.zones}

    def update(self, tracked: Tracked) -> None:
        detections = tracked.detections()
        for line in self.lines.values():
            line.trigger(detections)
        anchors = np.stack([(tracked.boxes[:, 0] + tracked.boxes[:, 2]) / 2, tracked.boxes[:, 3]], axis=1)
        for name, zone in self.zones.items():
            inside = zone.contains_points(anchors, radius=1e-9) if len(anchors) else np.zeros(0, bool)
            self.zone_now[name] = int(inside.sum())
            self.zone_seen[name].update(int(i) for i in tracked.ids[inside])

    def snapshot(self, names: list[str]) -> dict[str, Any]:
        def per_class(counts: dict[int | None, int]) -> dict[str, int]:
            return {names[int(c)] if c is not None and 0 <= int(c) < len(names) else str(c): n
                    for c, n in sorted(counts.items(), key=lambda kv: str(kv[0]))}

        return {"lines": {name: {"in": line.in_count, "out": line.out_count,
                                 "in_per_class": per_class(line.in_count_per_class),
                                 "out_per_class": per_class(line.out_count_per_class)}
                          for name, line in self.lines.items()},
                "zones": {name: {"now": self.zone_now[name], "total": len(self.zone_seen[name])}
                          for name in self.zones}}


class Drawer:
    """Boxes with class names and track IDs, the lines and zones with their counts, on a copy of the frame."""

    def __init__(self, names: list[str], counters: Counters) -> None:
        self.names = names
        self.counters = counters
        self.boxes = sv.BoxAnnotator(color_lookup=sv.ColorLookup.TRACK)
        self.labels = sv.LabelAnnotator(color_lookup=sv.ColorLookup.TRACK, text_scale=0.4, text_padding=3)
        self.line_drawer = sv.LineZoneAnnotator(text_scale=0.4, text_thickness=1, thickness=2)

    def draw(self, image: np.ndarray, tracked: Tracked) -> np.ndarray:
        scene = image.copy()
        detections = tracked.detections()
        if len(detections):
            labels = [f"#{i} {self.names[c] if 0 <= c < len(self.names) else c}"
                      for i, c in zip(tracked.ids, tracked.classes, strict=True)]
            scene = self.boxes.annotate(scene, detections)
            scene = self.labels.annotate(scene, detections, labels=labels)
        for line in self.counters.lines.values():
            scene = self.line_drawer.annotate(scene, line)
        for name, zone in self.counters.zones.items():
            polygon = np.clip(zone.vertices, -32768, 32767).astype(np.int64)
            scene = sv.draw_polygon(scene, polygon, sv.Color.WHITE, 2)
            x, y = np.clip(polygon.min(axis=0), 0, None)
            scene = sv.draw_text(scene, f"{name}: {self.counters.zone_now[name]}",
                                 sv.Point(int(x) + 40, int(y) + 12), text_scale=0.4, background_color=sv.Color.WHITE,
                                 text_color=sv.Color.BLACK)
        return scene
