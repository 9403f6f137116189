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
from pathlib import Path
from typing import Any

from yoloforge.engines.base import Engine, Prediction
from yoloforge.serving.streams.inference import Inference
from yoloforge.serving.streams.sources import Frame, SourceError
from yoloforge.serving.streams.stream import Stream, StreamJob

__all__ = ["Inference", "StreamExists", "StreamJob", "StreamNotFound", "StreamService"]

class StreamNotFound(KeyError):
    """No stream of that name (the HTTP API's 404)."""


class StreamExists(ValueError):
    """A stream of that name is already running (the HTTP API's 409)."""


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
