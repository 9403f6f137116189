"""What a stream leaves in its output folder: tracks in MOT format, one JSON line per frame, the counts, and an
optional annotated MP4 (H.264 through PyAV, which any browser plays).

`tracks.txt` is what TrackEval and trackers.eval read (frame, id, left, top, width, height, conf, -1, -1, -1;
frames from 1 in the source's own numbering, so a frame dropped under load leaves a gap rather than shifting the
rest). `frames.jsonl` has every processed frame, with its age when tracked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import numpy as np
from yoloforge.core.atomic import write_json
from yoloforge.serving.streams.tracking import Tracked

TRACKS = "tracks.txt"
FRAMES = "frames.jsonl"
COUNTS = "counts.json"
ANNOTATED = "annotated.mp4"


def mot_lines(frame: int, tracked: Tracked) -> str:
    """MOT Challenge rows of one frame (frame counted from 1)."""
    rows = []
    for i, (x1, y1, x2, y2), score in zip(tracked.ids, tracked.boxes, tracked.scores, strict=True):
        rows.append(f"{frame},{int(i)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n")
    return "".join(rows)


def frame_record(stream: str, frame: int, media_s: float, age_s: float, tracked: Tracked,
                 names: list[str]) -> dict[str, Any]:
    return {"stream": stream, "frame": frame, "time_s": round(media_s, 4), "age_ms": round(age_s * 1000, 2),
            "objects": [{"id": int(i), "class_id": int(c), "class_name": names[int(c)] if 0 <= c < len(names) else "",
                         "confidence": round(float(s), 4), "box": [round(float(v), 2) for v in b]}
                        for i, c, s, b in zip(tracked.ids, tracked.classes, tracked.scores, tracked.boxes,
                                              strict=True)]}


class VideoWriter:
    """Frames in, an H.264 MP4 out (the size of the first frame; the source's frame rate)."""

    def __init__(self, path: Path, fps: float) -> None:
        import av

        self.path = path
        self.fps = fps
        self.container = av.open(str(path), mode="w")
        self.stream: Any = None
        self.av = av

    def write(self, image: np.ndarray) -> None:
        if self.stream is None:
            from fractions import Fraction

            codec = "libx264" if "libx264" in self.av.codecs_available else "mpeg4"
            self.stream = self.container.add_stream(codec, rate=Fraction(round(self.fps * 1000), 1000))
            self.stream.height, self.stream.width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
            self.stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                self.stream.options = {"preset": "veryfast", "crf": "23"}
        image = image[: self.stream.height, : self.stream.width]
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()


class StreamOutputs:
    """The files of one stream, appended frame by frame (flushed, so a reader sees whole lines as they come)."""

    def __init__(self, folder: Path, stream: str, names: list[str], annotate: bool, fps: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.stream, self.names = folder, stream, names
        self.tracks: IO[str] = (folder / TRACKS).open("w")
        self.frames: IO[str] = (folder / FRAMES).open("w")
        self.video = VideoWriter(folder / ANNOTATED, fps or 30.0) if annotate else None

    def write(self, frame: int, media_s: float, age_s: float, tracked: Tracked, drawn: np.ndarray | None) -> None:
        self.tracks.write(mot_lines(frame, tracked))
        self.frames.write(json.dumps(frame_record(self.stream, frame, media_s, age_s, tracked, self.names)) + "\n")
        if self.video is not None and drawn is not None:
            self.video.write(drawn)

    def flush(self) -> None:
        self.tracks.flush()
        self.frames.flush()

    def close(self, summary: dict[str, Any]) -> None:
        self.tracks.close()
        self.frames.close()
        if self.video is not None:
            self.video.close()
        write_json(self.folder / COUNTS, summary)
