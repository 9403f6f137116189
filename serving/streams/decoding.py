"""Decoding a video source's frames: PyAV (FFmpeg) first, OpenCV for cameras and what PyAV cannot open, and their
errors in words."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

OPEN_TIMEOUT_S = 5.0


def _open_pyav(url: str) -> Iterator[tuple[np.ndarray, float, float]]:
    """(RGB frame, seconds into the source, source fps) from PyAV; raises on open or decode failure."""
    import av
    import av.logging

    # FFmpeg's own log lines (e.g. "Connection refused" at every retry) would clutter the console: the reader
    # reports a source's failure itself, in its state and error
    av.logging.set_level(av.logging.FATAL)
    options = {"rtsp_transport": "tcp"} if url.lower().startswith("rtsp") else {}
    container = av.open(url, options=options, timeout=OPEN_TIMEOUT_S)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        for n, frame in enumerate(container.decode(stream)):
            media = float(frame.time) if frame.time is not None else (n / rate if rate else 0.0)
            yield frame.to_ndarray(format="rgb24"), media, rate
    finally:
        container.close()


def _open_opencv(url: str) -> Iterator[tuple[np.ndarray, float, float]]:
    """The same from OpenCV: cameras (V4L2 device indices) and what PyAV's FFmpeg build cannot open."""
    # OpenCV's own FFmpeg build logs apart from cv2.utils.logging: its level is read from the environment when
    # the FFmpeg backend first loads (-8 is FFmpeg's AV_LOG_QUIET); the reader reports failures itself
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    capture = cv2.VideoCapture(int(url) if url.isdigit() else url)
    if not capture.isOpened():
        raise OSError(f"OpenCV cannot open {url}")
    try:
        rate = float(capture.get(cv2.CAP_PROP_FPS) or 0)
        n = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), n / rate if rate else 0.0, rate
            n += 1
    finally:
        capture.release()


def readable(err: BaseException) -> str:
    """An error in words: FFmpeg's errors (through PyAV) carry a raw errno such as 1094995529 beside their text."""
    strerror = getattr(err, "strerror", None)
    return strerror if isinstance(strerror, str) and strerror else str(err)


def open_frames(url: str, *, camera: bool = False) -> Iterator[tuple[np.ndarray, float, float]]:
    """A source's frames, from PyAV where it can open the source, else OpenCV (always for a camera)."""
    if camera:
        yield from _open_opencv(url)
        return
    try:
        frames = _open_pyav(url)
        first = next(frames, None)
    except Exception as pyav_error:  # PyAV's errors are many; OpenCV gets its chance, then both are said
        try:
            yield from _open_opencv(url)
            return
        except OSError:
            raise OSError(f"cannot open {url}: {readable(pyav_error)} (neither PyAV nor OpenCV can decode "
                          "it)") from pyav_error
    if first is not None:
        yield first
        yield from frames
