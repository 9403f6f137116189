"""Soak: a server driven at twice its measured capacity for minutes (hours on request), open loop.

Without a URL it exports a quick run's bundle and starts its Go server with real Redis and PostgreSQL (as
bench_server.py does); --preview starts the Ray Serve preview instead. First the capacity is measured: the same
request mix, closed loop at 32 clients for --capacity-s seconds. Then requests leave at --load x that rate
(serving/soak.py: drive): images answered before, images never seen, and a few bad requests. Every 10 s it
prints answers by status, p50/p99 of admitted requests, and the server process's RSS, open files, threads
(goroutines and queue depth for the Go server).

Goals (issue 21): rss_growth < 10% from minute 2 to the end; non_503_errors = 0 (beyond capacity the answer is
503 with Retry-After, never a timeout or another 5xx); p99_admitted at the end within 2x of its first-minute
value; log_rows_accounted = 100% (Go server: rows written + rows dropped = requests answered).

Usage: python scripts/soak.py [URL --key KEY] [--preview] [--minutes 10] [--load 2.0] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import httpx

os.environ.setdefault("YOLO_VERBOSE", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from servers import Served, go_server, preview_server  # noqa: E402
from yoloforge.serving.soak import Window, drive, metric_values, process_sample  # noqa: E402

GO_METRICS = ("go_goroutines", "yoloforge_queue_depth", "yoloforge_log_rows_dropped_total")


def sampler(url: str, pid: int):  # type: ignore[no-untyped-def]
    def sample() -> dict[str, float]:
        values = process_sample(pid) if pid else {}
        with contextlib.suppress(httpx.HTTPError):
            values |= metric_values(httpx.get(f"{url}/metrics", timeout=5).text, GO_METRICS)
        return values

    return sample


def capacity(url: str, headers: dict[str, str], seconds: float) -> tuple[float, int]:
    """Answers a second of the soak's mix, closed loop at 32 clients (no 503 counted as capacity), and how many
    requests the server answered meanwhile (its inference log holds them too)."""
    outcome = asyncio.run(drive(url, rate=1.0, duration_s=seconds, headers=headers, window_s=seconds + 1,
                                seed=99, clients=32))
    return outcome.answers.get("200", 0) / seconds, outcome.answered


def show(window: Window) -> None:
    s = window.sample
    answers = " ".join(f"{k}:{v}" for k, v in sorted(window.answers.items()))
    p = f"p50 {window.p50_ms:6.1f} p99 {window.p99_ms:7.1f} ms" if window.p99_ms is not None else "no 200s"
    extra = " ".join(f"{k} {s[k]:.0f}" for k in ("go_goroutines", "yoloforge_queue_depth", "client_in_flight")
                     if k in s)
    print(f"{window.end_s:7.1f} s  {answers:<40} {p}  RSS {s.get('rss_mb', 0):7.1f} MB  fds {s.get('fds', 0):.0f}  "
          f"threads {s.get('threads', 0):.0f}  {extra}  failures {window.failures}", flush=True)


def minute_p99(windows: list[Window], first: bool) -> float | None:
    """The median of the window p99s in the first (or the last) minute."""
    end = windows[-1].end_s
    chosen = [w.p99_ms for w in windows if w.p99_ms is not None and (w.end_s <= 60 if first else w.end_s > end - 60)]
    return statistics.median(chosen) if chosen else None


def accounted(served: Served, answered: int) -> int:
    """Rows written + rows dropped, once the log writer has flushed (or a minute has passed)."""
    from tests.services import psql

    deadline = time.monotonic() + 60
    while True:
        written = int(psql(served.postgres.url, "SELECT count(*) FROM inference_log"))  # type: ignore[union-attr]
        dropped = metric_values(httpx.get(f"{served.url}/metrics", timeout=5).text, GO_METRICS).get(
            "yoloforge_log_rows_dropped_total", 0.0)
        total = written + int(dropped)
        if total >= answered or time.monotonic() > deadline:
            return total
        time.sleep(1)


def soak(served: Served, args: argparse.Namespace) -> int:
    print(f"measuring capacity ({args.capacity_s:g} s, closed loop, 32 clients, the soak's mix) ...", flush=True)
    measured, answered_before = capacity(served.url, served.headers, args.capacity_s)
    rate = args.load * measured
    print(f"capacity {measured:.1f} answers/s; soaking at {rate:.1f} requests/s ({args.load:g}x) for "
          f"{args.minutes:g} min", flush=True)
    outcome = asyncio.run(drive(served.url, rate=rate, duration_s=args.minutes * 60, headers=served.headers,
                                window_s=args.window, sample=sampler(served.url, served.pid), on_window=show))
    windows = outcome.windows
    print()
    print("answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(outcome.answers.items())))
    if outcome.failures:
        print("failures: " + ", ".join(f"{k}: {v}" for k, v in sorted(outcome.failures.items())))
    after_2 = [w for w in windows if w.end_s >= 120 and "rss_mb" in w.sample] or [w for w in windows
                                                                                    if "rss_mb" in w.sample]
    rss_start, rss_end = after_2[0].sample.get("rss_mb"), after_2[-1].sample.get("rss_mb")
    growth = (rss_end - rss_start) / rss_start if rss_start and rss_end else None
    first, last = minute_p99(windows, True), minute_p99(windows, False)
    errors = sum(outcome.failures.values())
    if args.json:
        args.json.write_text(json.dumps({"capacity": measured, "rate": rate, "answers": outcome.answers,
                                         "failures": outcome.failures,
                                         "windows": [asdict(w) for w in windows]}, indent=2))
    print(f"RSS {rss_start:.1f} MB at minute 2, {rss_end:.1f} MB at the end" if growth is not None else "RSS: n/a")
    print(f"p99 of admitted requests: first minute {first} ms, last minute {last} ms")
    print(f"GOAL rss_growth: {growth:.1%} (target < 10%) {'PASS' if growth < 0.10 else 'FAIL'}"
          if growth is not None else "GOAL rss_growth: not measured (no server process here) (target < 10%) FAIL")
    print(f"GOAL non_503_errors: {errors} (target 0) {'PASS' if errors == 0 else 'FAIL'}")
    if first and last:
        print(f"GOAL p99_admitted: {last / first:.2f}x the first minute (target <= 2x) "
              f"{'PASS' if last <= 2 * first else 'FAIL'}")
    else:
        print("GOAL p99_admitted: no admitted request (target <= 2x) FAIL")
    if served.postgres is not None:  # the capacity run was logged too: everything the server answered
        answered = outcome.answered + answered_before
        total = accounted(served, answered)
        print(f"GOAL log_rows_accounted: {total / answered:.2%} ({total} rows of {answered} answers) "
              f"(target 100%) {'PASS' if total == answered else 'FAIL'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="a running server; without it one is started here")
    parser.add_argument("--key", help="API key of the running server")
    parser.add_argument("--preview", action="store_true", help="start the Ray Serve preview, not the Go server")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=2.0, help="times the measured capacity")
    parser.add_argument("--capacity-s", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=10.0, help="seconds per line")
    parser.add_argument("--imgsz", type=int, default=320, help="input size of the quick run's model")
    parser.add_argument("--json", type=Path, help="also write every window as JSON")
    args = parser.parse_args()
    if args.url:
        headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
        return soak(Served(args.url.rstrip("/"), headers, 0, Path()), args)
    with tempfile.TemporaryDirectory(prefix="soak_") as tmp:
        start = preview_server if args.preview else go_server
        print(f"starting the {'Ray Serve preview' if args.preview else 'Go server with Redis and PostgreSQL'} of a "
              f"quick run (yolo11n @{args.imgsz}) ...", flush=True)
        with start(Path(tmp), imgsz=args.imgsz) as served:
            return soak(served, args)


if __name__ == "__main__":
    sys.exit(main())
