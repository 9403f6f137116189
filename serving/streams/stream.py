"""One stream: what the user asked for (StreamJob), and its reader, tracker, counters, outputs and figures
(Stream). Results are delivered in frame order under the service's condition."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.engines.base import ModelFacts, Prediction
from yoloforge.serving.streams.outputs import StreamOutputs
from yoloforge.serving.streams.sources import Frame, Reader, SourceError, SourceSpec
from yoloforge.serving.streams.tracking import Counters, Drawer, Line, StreamTracker, Tracked, TrackerSettings, Zone

RATE_WINDOW_S = 5.0  # a stream's FPS and frame-age percentiles are over this much recent time
KEEP_UP_SHARE = 0.95  # a stream keeps up with its FPS target while it tracks at least this share of it


@dataclass(frozen=True)
class StreamJob:
    """One stream as the user asked for it: its source, what to count, what to write."""

    source: SourceSpec
    name: str = ""
    lines: tuple[Line, ...] = ()
    zones: tuple[Zone, ...] = ()
    annotate: bool = False
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    classes: tuple[str, ...] = ()  # class names to track (default: every class)


def keeps_up(rate: float, target: float, live_source_fps: float | None) -> bool:
    """A stream tracking `rate` frames a second keeps up with its target when it reaches KEEP_UP_SHARE of it, or of
    its live source's own rate where that is lower (all that source gives)."""
    expected = min(target, live_source_fps) if live_source_fps else target
    return rate >= KEEP_UP_SHARE * expected


class Stream:
    """One source's reader, tracker, counters and outputs, and its figures."""

    def __init__(self, name: str, job: StreamJob, condition: threading.Condition, facts: ModelFacts,
                 out_dir: Path | None) -> None:
        self.name, self.job, self.facts = name, job, facts
        unknown = [c for c in job.classes if c not in facts.names]
        if unknown:
            raise SourceError(f"classes {unknown} are not among the model's ({', '.join(facts.names[:20])}"
                              f"{', ...' if len(facts.names) > 20 else ''})",
                              fix="give --classes names the model has (spelled as listed), or leave --classes out")
        self.class_ids = np.array([facts.names.index(c) for c in job.classes], np.int64)
        self.reader = Reader(name, job.source, condition)
        self.counters = Counters(job.lines, job.zones)
        self.drawer = Drawer(facts.names, self.counters) if job.annotate else None
        self.out_dir = out_dir
        self.outputs: StreamOutputs | None = None
        self.tracker: StreamTracker | None = None
        self.lock = threading.RLock()  # summary() reads what tracking writes, and close() asks for a summary
        self.taken = 0  # frames handed to the batcher, numbered in order
        self.next_seq = 0  # the next frame the tracker must see
        self.pending: dict[int, tuple[Frame, Prediction]] = {}
        self.processed = 0
        self.first_done = self.last_done = 0.0  # monotonic times of the first and last tracked frame
        self.active_tracks = 0
        self.seen_ids: set[int] = set()
        self.recent: deque[tuple[float, float]] = deque()  # (done at, age s) of recent frames
        self.started = time.monotonic()
        self.state = "running"  # running | finished | failed | removed

    @property
    def in_flight(self) -> int:
        return self.taken - self.processed

    def deliver(self, frame: Frame, prediction: Prediction) -> None:
        """One frame's detections; tracking runs in frame order (lanes may finish out of order)."""
        with self.lock:
            self.pending[frame.seq] = (frame, prediction)
            while self.next_seq in self.pending:
                self._track(*self.pending.pop(self.next_seq))
                self.next_seq += 1

    def _track(self, frame: Frame, prediction: Prediction) -> None:
        if self.tracker is None:
            fps = self.reader.stats.fps
            self.tracker = StreamTracker(self.job.tracker, fps)
            if self.out_dir is not None:
                self.outputs = StreamOutputs(self.out_dir / self.name, self.name, self.facts.names, self.job.annotate,
                                             fps)
        if len(self.class_ids):
            keep = np.isin(prediction.classes, self.class_ids)
            prediction = Prediction(boxes=prediction.boxes[keep], scores=prediction.scores[keep],
                                    classes=prediction.classes[keep], width=prediction.width,
                                    height=prediction.height)
        tracked: Tracked = self.tracker.update(prediction, frame.media_s)
        self.counters.update(tracked)
        drawn = self.drawer.draw(frame.image, tracked) if self.drawer is not None else None
        now = time.monotonic()
        age = now - frame.captured
        if self.outputs is not None:
            self.outputs.write(frame.index + 1, frame.media_s, age, tracked, drawn)
        self.processed += 1
        self.first_done = self.first_done or now
        self.last_done = now
        self.active_tracks = len(tracked)
        self.seen_ids.update(int(i) for i in tracked.ids)
        self.recent.append((now, age))
        while self.recent and self.recent[0][0] < now - RATE_WINDOW_S:
            self.recent.popleft()

    def close(self, state: str) -> None:
        with self.lock:
            self.state = state
            if self.outputs is not None:
                self.outputs.close(self.summary())
                self.outputs = None

    def fps(self) -> float:
        now = time.monotonic()
        window = min(RATE_WINDOW_S, now - self.started)
        recent = [t for t, _ in self.recent if t >= now - window]
        return len(recent) / window if window > 0.5 else 0.0

    def average_fps(self) -> float:
        """Frames tracked per second over the stream's whole life so far."""
        span = self.last_done - self.first_done
        return (self.processed - 1) / span if self.processed > 1 and span > 0 else 0.0

    def keeps_up(self) -> bool | None:
        """Whether the stream tracks at its FPS target (None: it has none, or has run under a second): over the
        last seconds while it runs, over its life once ended."""
        target = self.job.source.fps_target
        if target is None or time.monotonic() - self.started < 1.0:
            return None
        rate = self.fps() if self.state == "running" else self.average_fps()
        return keeps_up(rate, target, self.reader.stats.fps if self.job.source.is_live else None)

    def age_p95_s(self) -> float:
        ages = [a for _, a in self.recent]
        return float(np.percentile(ages, 95)) if ages else 0.0

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return self._summary()

    def _summary(self) -> dict[str, Any]:
        s = self.reader.stats
        state = self.state
        if state == "running" and s.state in ("connecting", "retrying"):
            state = s.state  # a file read to its end stays running until its last frame is tracked
        return {"name": self.name, "source": self.job.source.url, "live": self.job.source.is_live, "state": state,
                "error": s.error, "decoded": s.decoded, "processed": self.processed, "dropped": s.dropped,
                "skipped": s.skipped, "waiting": len(self.reader.waiting), "in_flight": self.in_flight,
                "reconnects": s.reconnects, "fps": round(self.fps(), 2), "average_fps": round(self.average_fps(), 2),
                "source_fps": round(s.fps, 3), "fps_target": self.job.source.fps_target, "keeps_up": self.keeps_up(),
                "frame_age_p95_ms": round(self.age_p95_s() * 1000, 1), "active_tracks": self.active_tracks,
                "tracks_seen": len(self.seen_ids), "counts": self.counters.snapshot(self.facts.names)}
