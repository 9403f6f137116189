"""Many video streams on one engine: readers per source, one cross-stream batcher, a tracker per stream.

The batcher's workers (one per engine lane: engines/lanes.py, the preview's rule) each take whatever frames are
waiting, across streams in turn, up to the engine's batch, and never wait for a slow stream; a frame is
letterboxed, run and post-processed by the engines' own functions (preprocess, plan_batches/run_batches,
postprocess: the one inference path). Results reach their stream's tracker in frame order even when two lanes
finish out of order. Streams are added and removed while the others run.

Accounting per stream: every decoded frame is processed or dropped (decoded = processed + dropped once the
stream has stopped); frames wait in the reader's buffer, never on Ray's object store.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from yoloforge.engines.base import Engine, ModelFacts, Prediction
from yoloforge.engines.lanes import engine_lanes
from yoloforge.engines.predictor import measure_call_ms, plan_batches, run_batches
from yoloforge.engines.processing import postprocess, preprocess
from yoloforge.engines.registry import cpu_count
from yoloforge.serving.served import ServedModel
from yoloforge.serving.streams.outputs import StreamOutputs
from yoloforge.serving.streams.sources import Frame, Reader, SourceError, SourceSpec
from yoloforge.serving.streams.tracking import Counters, Drawer, Line, StreamTracker, Tracked, TrackerSettings, Zone

RATE_WINDOW_S = 5.0  # a stream's FPS and frame-age percentiles are over this much recent time


class StreamNotFound(KeyError):
    """No stream of that name (the HTTP API's 404)."""


class StreamExists(ValueError):
    """A stream of that name is already running (the HTTP API's 409)."""


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


@dataclass
class Inference:
    """How frames are detected: the engine lanes of a run's chosen configuration and the thresholds."""

    lanes: list[dict[int, Engine]]
    facts: ModelFacts
    imgsz: int
    batch: int
    call_ms: dict[int, float]
    conf: float = 0.1  # low: ByteTrack's second association uses the weak detections
    iou: float = 0.7

    @classmethod
    def from_run(cls, run_dir: str | Path, *, lanes: int | None = None, batch: int | None = None,
                 conf: float = 0.1) -> Inference:
        """The run's chosen engine, as many copies side by side as the engines rule says for two batches at once
        (or `lanes`), each with batch-1 beside the selected batch so a lone frame is not padded."""
        served = ServedModel.from_run(run_dir)
        count, threads = engine_lanes(2, served.config)
        if lanes is not None and lanes != count:
            count = lanes
            threads = max(1, (served.config.threads or cpu_count()) // lanes) if served.config.device == "cpu" else None
        size = batch or served.config.batch
        copies = [{s: served.load(s, serving=True, threads=threads) for s in {size, 1}} for _ in range(count)]
        call_ms = measure_call_ms(copies[0], (3, served.config.imgsz, served.config.imgsz))
        return cls(copies, served.facts, served.config.imgsz, size, call_ms, conf)

    def detect(self, lane: dict[int, Engine], images: list[np.ndarray]) -> list[Prediction]:
        tensor, placed = preprocess(images, self.imgsz, self.facts.task)
        outputs = run_batches(lane, tensor, plan_batches(len(images), self.call_ms))
        return postprocess(outputs, placed, self.facts, self.imgsz, conf=self.conf, iou=self.iou)

    def close(self) -> None:
        for lane in self.lanes:
            for engine in lane.values():
                engine.close()


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
                "source_fps": round(s.fps, 3),
                "frame_age_p95_ms": round(self.age_p95_s() * 1000, 1), "active_tracks": self.active_tracks,
                "tracks_seen": len(self.seen_ids), "counts": self.counters.snapshot(self.facts.names)}


class StreamService:
    """Streams in, tracked objects out, on one process's engine lanes (local mode; a Ray actor holds one)."""

    def __init__(self, inference: Inference, out_dir: str | Path | None = None) -> None:
        self.inference = inference
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.condition = threading.Condition()
        self.streams: dict[str, Stream] = {}  # running
        self.ended: dict[str, Stream] = {}  # finished or removed: kept for their figures
        self.closing = 0  # streams taken off the running ones whose outputs are being finished
        self.turn = itertools.count()
        self.running = True
        self.workers = [threading.Thread(target=self._work, args=(lane,), name=f"stream-lane-{i}", daemon=True)
                        for i, lane in enumerate(inference.lanes)]
        for worker in self.workers:
            worker.start()

    # --- streams -------------------------------------------------------------------------------------------
    def add(self, job: StreamJob) -> str:
        job.source.check()
        with self.condition:
            name = job.name or self._free_name()
            if not _valid_name(name):
                raise SourceError(f"stream name {name!r}: use letters, digits, '-', '_' and '.' (at most 64)")
            if name in self.streams:
                raise StreamExists(f"a stream named {name!r} is already running; remove it first or pick another name")
            stream = Stream(name, job, self.condition, self.inference.facts, self.out_dir)
            self.ended.pop(name, None)
            self.streams[name] = stream
        stream.reader.start()
        return name

    def remove(self, name: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Stop one stream and forget it (a finished one too); its waiting frames are counted as dropped, its
        frames in flight are finished. Returns its final figures."""
        with self.condition:
            stream = self.streams.get(name)
            if stream is None:
                if name in self.ended:
                    return self.ended.pop(name).summary()
                raise StreamNotFound(name)
        stream.reader.stop()
        with self.condition:
            stream.reader.discard_waiting()
        deadline = time.monotonic() + timeout_s
        while stream.in_flight > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._end(stream, "removed")
        with self.condition:
            self.ended.pop(name, None)
        return stream.summary()

    def get(self, name: str) -> dict[str, Any]:
        with self.condition:  # as list(): the workers end streams meanwhile
            stream = self.streams.get(name) or self.ended.get(name)
        if stream is None:
            raise StreamNotFound(name)
        return stream.summary()

    def list(self) -> list[dict[str, Any]]:
        with self.condition:  # the workers end streams meanwhile
            streams = [*self.streams.values(), *self.ended.values()]
        return [s.summary() for s in streams]

    def running_names(self) -> list[str]:
        with self.condition:
            return list(self.streams)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until every stream has ended (files read to their end); False if the timeout came first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.streams or self.closing:  # a stream whose outputs are being finished has not ended yet
            self._end_finished()
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        for name in list(self.streams):
            self.remove(name)
        self.running = False
        with self.condition:
            self.condition.notify_all()
        for worker in self.workers:
            worker.join(5)

    # --- the batcher ---------------------------------------------------------------------------------------
    def _take(self, limit: int) -> list[tuple[Stream, Frame]]:
        """Up to `limit` waiting frames, one per stream in turn (starting at a rotating stream, so no stream is
        always last), as soon as at least one is waiting."""
        while self.running:
            with self.condition:
                streams = [s for s in self.streams.values() if s.reader.waiting]
                if streams:
                    start = next(self.turn) % len(streams)
                    order = streams[start:] + streams[:start]
                    taken: list[tuple[Stream, Frame]] = []
                    while len(taken) < limit and order:
                        for stream in list(order):
                            frame = stream.reader.take()
                            if frame is None:
                                order.remove(stream)
                                continue
                            frame.seq = stream.taken
                            stream.taken += 1
                            taken.append((stream, frame))
                            if len(taken) == limit:
                                break
                    return taken
                self.condition.wait(0.2)
                finished = self._detach_finished_locked()
            self._close(finished)
        return []

    def _work(self, lane: dict[int, Engine]) -> None:
        while self.running:
            taken = self._take(self.inference.batch)
            if not taken:
                continue
            try:
                predictions = self.inference.detect(lane, [frame.image for _, frame in taken])
            except Exception as exc:  # an engine failure must not kill the lane: the frames are reported lost
                predictions = [Prediction(width=f.image.shape[1], height=f.image.shape[0]) for _, f in taken]
                for stream, _ in taken:
                    stream.reader.stats.error = f"inference failed: {exc}"
            for (stream, frame), prediction in zip(taken, predictions, strict=True):
                stream.deliver(frame, prediction)
            self._end_finished()

    def _end_finished(self) -> None:
        with self.condition:
            finished = self._detach_finished_locked()
        self._close(finished)

    def _detach_finished_locked(self) -> list[tuple[Stream, str]]:
        """The streams read to their end and fully tracked, moved to the ended ones; the caller closes them once
        it has let go of the lock (finishing an MP4 takes long, and every engine worker waits on this lock)."""
        finished = []
        for stream in list(self.streams.values()):
            if stream.reader.done and not stream.reader.waiting and stream.in_flight == 0:
                self.streams.pop(stream.name, None)
                self.ended[stream.name] = stream
                finished.append((stream, "failed" if stream.reader.stats.state == "failed" else "finished"))
        self.closing += len(finished)
        return finished

    def _close(self, finished: list[tuple[Stream, str]]) -> None:
        for stream, state in finished:
            try:
                stream.close(state)
            finally:
                with self.condition:
                    self.closing -= 1

    def _end(self, stream: Stream, state: str) -> None:
        with self.condition:
            self.streams.pop(stream.name, None)
            self.ended[stream.name] = stream
        stream.close(state)

    def _free_name(self) -> str:
        for n in itertools.count(1):
            if f"stream-{n}" not in self.streams and f"stream-{n}" not in self.ended:
                return f"stream-{n}"
        raise AssertionError  # unreachable


def _valid_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isalnum() or c in "-_." for c in name) and name not in (".", "..")
