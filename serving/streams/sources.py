"""One reader thread per video source: it decodes frames (PyAV, or OpenCV where PyAV cannot open the source),
keeps them in the stream's buffer and reconnects when the source fails.

A recorded file that cannot be decoded at all fails at once, with the reason.

A live source (a camera, an RTSP/HTTP URL, or a file read as if it were one) keeps only its newest frames: when
the engine falls behind, the oldest waiting frame is dropped and counted, so a frame's age stays bounded (latest
wins). A recorded file is read frame by frame and the reader waits for room instead (nothing dropped), or at
`max_fps`. A source that fails to open or stops delivering is retried with a backoff capped at one second, and
its error is reported; the other streams never wait for it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from yoloforge.serving.streams.decoding import open_frames, readable

State = Literal["connecting", "running", "retrying", "finished", "failed", "stopped"]
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
BACKOFF_START_S = 0.1
BACKOFF_CAP_S = 1.0  # frames flow again within about a second of a source coming back


class SourceError(ValueError):
    """A stream the user asked for cannot be run as given: what is wrong, and (fix) what to change."""

    def __init__(self, message: str, fix: str = "check the --source values") -> None:
        super().__init__(message)
        self.fix = fix

    def __reduce__(self) -> tuple[Any, ...]:  # Ray pickles it back to the driver: keep the fix
        return (type(self), (str(self), self.fix))


@dataclass(frozen=True)
class SourceSpec:
    """Where a stream's frames come from and how to read them."""

    url: str  # a file, an rtsp/http(s)/... URL, or a camera: its index ("0") or device (/dev/video0)
    live: bool | None = None  # None: files are recorded, URLs and cameras are live
    max_fps: float | None = None  # a file is read no faster than this; a live source's surplus is skipped
    loop: bool = False  # a file starts again at its end (an endless test camera)
    buffer: int = 0  # frames kept waiting; 0: 1 for a live source, 16 for a file
    # frames per second the stream must keep up with: a file is delivered at this rate, as a camera would deliver
    # it, and the frames the engine cannot keep up with are dropped oldest-first (a live source's always are)
    fps_target: float | None = None

    @property
    def is_camera(self) -> bool:
        return self.url.isdigit() or self.url.startswith("/dev/video")

    @property
    def is_url(self) -> bool:
        return self.url.lower().startswith(URL_SCHEMES)

    @property
    def is_live(self) -> bool:
        return self.live if self.live is not None else (self.is_url or self.is_camera)

    @property
    def drops_oldest(self) -> bool:
        """A full buffer drops its oldest frame for the new one (else a file's reader waits for room)."""
        return self.is_live or self.fps_target is not None

    @property
    def capacity(self) -> int:
        return self.buffer or (1 if self.is_live else 16)

    def check(self) -> None:
        """A local file that does not exist is the user's mistake, said at once (a URL may come up later)."""
        if self.is_url or self.is_camera or self.is_live:
            return
        path = Path(self.url)
        if not path.is_file():
            raise SourceError(f"video source {self.url}: no such file (give a video file, an rtsp:// or http:// URL, "
                              "or a camera index such as 0)")


@dataclass
class Frame:
    """One decoded frame on its way through the batcher, with what tracking and the metrics need."""

    stream: str
    seq: int  # 0-based order in which the batcher took it from its stream (tracking runs in this order)
    index: int  # frames read from the source before this one (over reconnections and loops; skipped too)
    image: np.ndarray  # RGB uint8 (H, W, 3)
    media_s: float  # position in the source, seconds (a live source: seconds since it connected)
    captured: float  # time.monotonic() when decoded: a frame's age is measured from here


@dataclass
class ReaderStats:
    decoded: int = 0
    dropped: int = 0  # replaced by a newer frame before the engine took it (live sources only)
    skipped: int = 0  # a live source's frames above max_fps, never kept (not counted as decoded)
    reconnects: int = 0
    state: State = "connecting"
    error: str = ""
    fps: float = 0.0  # the source's own frame rate, when it says


@dataclass
class Reader:
    """Decodes one source on its own thread into a bounded buffer that the batcher takes frames from."""

    name: str
    spec: SourceSpec
    on_frame: threading.Condition  # shared with the batcher: notified when a frame is waiting
    stats: ReaderStats = field(default_factory=ReaderStats)
    waiting: deque[Frame] = field(default_factory=deque)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self.on_frame:
            self.on_frame.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def done(self) -> bool:
        """Nothing more will come: the file ended or the reader was stopped."""
        return self.stats.state in ("finished", "failed", "stopped")

    def take(self) -> Frame | None:
        """The oldest waiting frame (the caller holds on_frame)."""
        if not self.waiting:
            return None
        frame = self.waiting.popleft()
        self.on_frame.notify_all()  # a file's reader may be waiting for room
        return frame

    def discard_waiting(self) -> int:
        """Frames left waiting when the stream is removed: counted as dropped (the caller holds on_frame)."""
        n = len(self.waiting)
        self.waiting.clear()
        self.stats.dropped += n
        return n

    def _put(self, frame: Frame) -> None:
        with self.on_frame:
            if self.spec.drops_oldest:
                while len(self.waiting) >= self.spec.capacity:
                    self.waiting.popleft()
                    self.stats.dropped += 1
            else:
                while len(self.waiting) >= self.spec.capacity and not self._stop.is_set():
                    self.on_frame.wait(0.1)
                if self._stop.is_set():
                    self.stats.dropped += 1  # decoded, never processed: keeps decoded = processed + dropped
                    return
            self.waiting.append(frame)
            self.on_frame.notify_all()

    def _run(self) -> None:
        backoff, connected_once = BACKOFF_START_S, False
        last_media: float | None = None
        offset, read = 0.0, 0  # read: frames of the source so far, over every (re)connection and loop
        while not self._stop.is_set():
            self.stats.state = "connecting"
            try:
                opened, delivered, last_kept = time.monotonic(), 0, -1.0
                for index, (image, source_s, rate) in enumerate(open_frames(self.spec.url, camera=self.spec.is_camera)):
                    if self._stop.is_set():
                        break
                    read += 1
                    if index == 0:
                        # the stream's clock goes on across reconnections and loops (a source starts again at
                        # 0): the tracker's timestamps must only grow
                        offset = 0.0 if last_media is None else last_media + 1 / (rate or 30.0) - source_s
                    media_s = source_s + offset
                    if not delivered:
                        self.stats.fps = rate
                        self.stats.state, self.stats.error, backoff = "running", "", BACKOFF_START_S
                        if connected_once:
                            self.stats.reconnects += 1
                        connected_once = True
                    if self._sampled_out(media_s, last_kept):
                        self.stats.skipped += 1
                        continue
                    self._pace(opened, source_s, delivered)
                    self.stats.decoded += 1
                    last_media = media_s
                    self._put(Frame(self.name, -1, read - 1, image, media_s, time.monotonic()))  # seq: when taken
                    delivered, last_kept = delivered + 1, media_s
                if self._stop.is_set():
                    break
                if delivered == 0:
                    raise OSError(f"{self.spec.url} delivered no video frame")
                if not self.spec.is_live and not self.spec.loop:
                    self.stats.state = "finished"
                    return
                if not self.spec.is_live:
                    continue  # a looping file starts again at once
                raise OSError(f"{self.spec.url} ended")  # a live source that ends has failed: reconnect
            except Exception as exc:  # any failure of a source is reported and retried, never raised
                if self._stop.is_set():
                    break
                self.stats.error = (readable(exc).splitlines() or [repr(exc)])[0][:300]
                if not self.spec.is_live and not self.spec.loop and read == 0:
                    self.stats.state = "failed"  # a recorded file that cannot be read will not get better
                    return
                self.stats.state = "retrying"
                self._stop.wait(backoff)
                backoff = min(BACKOFF_CAP_S, backoff * 2)
        self.stats.state = "stopped"

    def _sampled_out(self, media_s: float, last_kept: float) -> bool:
        """A live source above max_fps: frames sooner than 1/max_fps after the last one kept are skipped."""
        if not (self.spec.is_live and self.spec.max_fps) or last_kept < 0:
            return False
        return media_s - last_kept < 1.0 / self.spec.max_fps - 1e-6

    def _pace(self, opened: float, media_s: float, delivered: int) -> None:
        """A file read at max_fps (or its FPS target, the lower of the two) waits for its turn; a file read as live
        is delivered when its timestamp says, as a camera would deliver it. URLs and cameras deliver at their own
        pace."""
        if self.spec.is_url or self.spec.is_camera:
            return
        rates = [r for r in (self.spec.max_fps, self.spec.fps_target) if r]
        if self.spec.is_live:
            due = opened + media_s
        elif rates:
            due = opened + delivered / min(rates)
        else:
            return
        wait = due - time.monotonic()
        if wait > 0:
            self._stop.wait(wait)
