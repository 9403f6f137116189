"""A network camera for tests and benches: an MPEG-TS file streamed over HTTP at its own pace, which can be
cut and brought back on the same port (a camera rebooting, a network outage)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


def paced_ts_server(ts_file: Path, duration_s: float, port: int = 0):
    """An HTTP server streaming an MPEG-TS file at its own pace, as a network camera does; `cut()` ends its
    connections and closes its port."""
    import http.server
    import socketserver
    import threading

    data = ts_file.read_bytes()
    rate = len(data) / duration_s

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            sent, started = 0, time.monotonic()
            first = int(rate)  # a second of video at once, as a camera's server sends its buffered GOP
            chunk = max(1024, int(rate / 20))
            with contextlib.suppress(OSError):
                while sent < len(data) and server.up:
                    end = sent + (first if sent == 0 else chunk)
                    self.wfile.write(data[sent:end])
                    sent = end
                    delay = started + (sent - first) / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)

        def log_message(self, *args) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        up = True

        def cut(self) -> None:
            self.up = False
            self.shutdown()
            self.server_close()

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def to_ts(video: Path, out: Path) -> Path:
    """The video re-encoded as MPEG-TS (streamable over HTTP: no index at the end, unlike mp4)."""
    import av

    with av.open(str(video)) as src, av.open(str(out), "w", format="mpegts") as dst:
        rate = src.streams.video[0].average_rate
        stream = dst.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = src.streams.video[0].width, src.streams.video[0].height
        stream.pix_fmt = "yuv420p"
        # a keyframe every second, so a reconnection decodes within a second; and a camera's bitrate (FFmpeg reads
        # an HTTP stream in 32 KB blocks: at a few KB/s, the first block alone would take seconds)
        stream.options = {"g": str(int(rate)), "qscale": "1"}
        stream.bit_rate = 2_000_000
        for frame in src.decode(video=0):
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out
