"""An open-loop load driver for long runs and faults under load (scripts/soak.py, tests/test_gateway_faults.py).

Requests leave at a fixed rate whatever the server does (a closed loop would slow down with the server and hide
an overload). The mix is what a service meets: images answered before (cache hits on the Go server), images
never seen (each a valid JPEG with unique bytes), and a few bad requests (undecodable bodies, a wrong
Content-Type). Every window (10 s by default) records answers by status, p50/p99 of admitted requests, and what
`sample()` reports of the server process (RSS, open files, threads or goroutines, queue depth).

What counts as a failure (`Outcome.failures`): a 5xx other than 503, a 503 without Retry-After, a timeout or a
dropped connection, a good image refused, or a bad request accepted. A 503 with Retry-After is the designed
answer beyond capacity.
"""

from __future__ import annotations

import asyncio
import io
import random
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

# the client's own bound: requests waiting for an answer beyond it count as failures (the server stalled)
MAX_IN_FLIGHT = 1024


@dataclass
class Window:
    end_s: float
    answers: dict[str, int]  # status (or the client error's name) -> count
    failures: int
    p50_ms: float | None  # of admitted requests (answered 200)
    p99_ms: float | None
    sample: dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    windows: list[Window]
    answers: dict[str, int]
    failures: dict[str, int]  # reason -> count
    sent: int

    @property
    def answered(self) -> int:
        """Requests the server answered with an HTTP status (what its inference log must account for)."""
        return sum(n for status, n in self.answers.items() if status.isdigit())


def unique_jpeg(base: bytes, n: int) -> bytes:
    """base with a comment segment holding n: different bytes (a cache miss), the same pixels."""
    comment = struct.pack(">Q", n)
    return base[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + base[2:]


def base_images(count: int = 32, size: int = 128, seed: int = 0) -> list[bytes]:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        pixels = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):
            x, y, r = (int(v) for v in rng.integers(size // 8, size - size // 8, 3) // 2 * 2)
            draw.ellipse([x - r // 2, y - r // 2, x + r // 2, y + r // 2], fill=tuple(int(c) for c in
                                                                                    rng.integers(120, 255, 3)))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        images.append(buf.getvalue())
    return images


def _percentiles(latencies: list[float]) -> tuple[float | None, float | None]:
    if not latencies:
        return None, None
    ms = np.asarray(latencies) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


async def drive(url: str, *, rate: float, duration_s: float, headers: dict[str, str] | None = None,
                new_fraction: float = 0.6, bad_fraction: float = 0.03, window_s: float = 10.0,
                sample: Callable[[], dict[str, float]] | None = None, timeout_s: float = 30.0,
                on_window: Callable[[Window], None] | None = None, seed: int = 0,
                clients: int | None = None) -> Outcome:
    """Send `rate` requests a second for duration_s to url/v1/predict; returns every window and the totals.
    With `clients`, a closed loop instead: that many clients, each sending its next request on an answer
    (how capacity is measured)."""
    url = url.rstrip("/")
    rng = random.Random(seed)
    bases = base_images(seed=seed)
    answers: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    window_answers: Counter[str] = Counter()
    window_failures = 0
    latencies: list[float] = []
    windows: list[Window] = []
    in_flight = 0

    def fail(reason: str) -> None:
        nonlocal window_failures
        failures[reason] += 1
        window_failures += 1

    async def one(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal in_flight
        try:
            await answer(session, index)
        finally:
            in_flight -= 1

    async def answer(session: aiohttp.ClientSession, index: int) -> None:
        roll = rng.random()
        bad = roll < bad_fraction
        if bad:
            body, content_type = (b"\xff\xd8 not a jpeg", "image/jpeg") if index % 2 else (b"hello", "text/plain")
        elif roll < bad_fraction + new_fraction:
            body, content_type = unique_jpeg(bases[index % len(bases)], index), "image/jpeg"
        else:
            body, content_type = bases[index % len(bases)], "image/jpeg"
        t0 = time.perf_counter()
        try:
            async with session.post(f"{url}/v1/predict", data=body, headers={"Content-Type": content_type},
                                    timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
                await r.read()
                status, retry_after = r.status, r.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as err:
            answers[type(err).__name__] += 1
            window_answers[type(err).__name__] += 1
            fail(f"client error {type(err).__name__}")
            return
        answers[str(status)] += 1
        window_answers[str(status)] += 1
        if status == 200:
            if bad:
                fail("a bad request accepted")
            else:
                latencies.append(time.perf_counter() - t0)
        elif status == 503:
            if not retry_after:
                fail("503 without Retry-After")
        elif status >= 500:
            fail(f"status {status}")
        elif not bad:
            fail(f"a good image answered {status}")

    def close_window(now: float) -> None:
        nonlocal window_failures
        p50, p99 = _percentiles(latencies)
        window = Window(end_s=round(now, 1), answers=dict(window_answers), failures=window_failures, p50_ms=p50,
                        p99_ms=p99, sample=(sample() if sample else {}) | {"client_in_flight": in_flight})
        windows.append(window)
        if on_window:
            on_window(window)
        window_answers.clear()
        latencies.clear()
        window_failures = 0

    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    tasks: set[asyncio.Task] = set()
    async with aiohttp.ClientSession(connector=connector, headers=headers or {}) as session:
        start = time.perf_counter()
        next_window = start + window_s
        index = 0
        if clients:
            async def client(first: int) -> None:
                nonlocal in_flight
                n = first
                while time.perf_counter() < start + duration_s:
                    in_flight += 1
                    await one(session, n)
                    n += clients

            await asyncio.gather(*(client(i) for i in range(clients)))
            close_window(time.perf_counter() - start)
            return Outcome(windows=windows, answers=dict(answers), failures=dict(failures),
                           sent=sum(answers.values()))
        while (now := time.perf_counter()) < start + duration_s:
            if now >= next_window:
                close_window(now - start)
                next_window += window_s
            due = start + index / rate
            if due > now:
                await asyncio.sleep(min(due - now, next_window - now))
                continue
            if in_flight >= MAX_IN_FLIGHT:
                fail("client backlog full (the server stopped answering)")
            else:
                in_flight += 1
                task = asyncio.create_task(one(session, index))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            index += 1
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s + 5)
        close_window(time.perf_counter() - start)
    return Outcome(windows=windows, answers=dict(answers), failures=dict(failures), sent=index)


def metric_values(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Unlabelled samples of these Prometheus metrics from an exposition text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


def process_sample(pid: int) -> dict[str, Any]:
    """RSS (MB), open file descriptors and threads of a process; {} once it is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return {"rss_mb": proc.memory_info().rss / 2**20, "fds": proc.num_fds(), "threads": proc.num_threads()}
    except psutil.Error:
        return {}
