"""A bounded async load generator for the yoloforge HTTP API (the Ray Serve preview and the Go server).

At most --concurrency requests are in flight; it stops after --requests or --duration, optionally paced to
--rps. It prints throughput, latency percentiles, errors by status, and the server's batch-size histogram
(from /metrics, the difference between before and after the run).

Usage: python scripts/loadgen.py http://127.0.0.1:8000 --concurrency 8 --duration 10 [--images DIR]
       [--rps 100] [--api-key KEY] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
BUCKET = re.compile(r'^yoloforge_batch_size_bucket\{le="([^"]+)"\} ([0-9.e+]+)$')


@dataclass
class LoadResult:
    requests: int
    ok: int
    elapsed_s: float
    rps: float  # successful answers per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)  # status (or exception name) -> count
    batch_histogram: dict[str, int] = field(default_factory=dict)  # "<=le" -> requests answered in such batches
    mean_batch: float | None = None

    def table(self) -> str:
        lines = [f"requests {self.requests}  ok {self.ok}  in {self.elapsed_s:.1f} s  ->  {self.rps:.1f} RPS",
                 f"latency ms  p50 {self.p50_ms:.1f}  p90 {self.p90_ms:.1f}  p99 {self.p99_ms:.1f}  "
                 f"max {self.max_ms:.1f}",
                 "errors: " + (", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none")]
        if self.batch_histogram:
            lines.append("server batch sizes: " + ", ".join(f"{k}: {v}" for k, v in self.batch_histogram.items())
                         + (f"  (mean {self.mean_batch:.2f})" if self.mean_batch else ""))
        return "\n".join(lines)


def synthetic_images(n: int = 8, size: int = 320, seed: int = 0) -> list[tuple[bytes, str]]:
    """JPEGs of coloured shapes on noise, when no image folder is given."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        im = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(3):
            x, y = rng.integers(0, size - 60, 2)
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            draw.ellipse([int(x), int(y), int(x) + 50, int(y) + 50], fill=colour)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        images.append((buf.getvalue(), "image/jpeg"))
    return images


def folder_images(folder: Path, limit: int = 64) -> list[tuple[bytes, str]]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in CONTENT_TYPES)[:limit]
    if not files:
        raise SystemExit(f"no .jpg/.png/.webp images under {folder}")
    return [(p.read_bytes(), CONTENT_TYPES[p.suffix.lower()]) for p in files]


async def scrape_batches(session: aiohttp.ClientSession, url: str) -> tuple[dict[str, float], float, float]:
    """Cumulative batch-size buckets, _sum and _count from /metrics (empty if the server has none)."""
    try:
        async with session.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
            text = await r.text()
    except (TimeoutError, aiohttp.ClientError):
        return {}, 0.0, 0.0
    buckets, total, count = {}, 0.0, 0.0
    for line in text.splitlines():
        m = BUCKET.match(line)
        if m:
            buckets[m.group(1)] = float(m.group(2))
        elif line.startswith("yoloforge_batch_size_sum "):
            total = float(line.split()[1])
        elif line.startswith("yoloforge_batch_size_count "):
            count = float(line.split()[1])
    return buckets, total, count


async def run_load(url: str, images: list[tuple[bytes, str]], *, concurrency: int = 8, requests: int | None = None,
                   duration: float | None = 10.0, rps: float | None = None, api_key: str | None = None,
                   timeout_s: float = 30.0, path: str = "/v1/predict") -> LoadResult:
    url = url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency + 2)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        before = await scrape_batches(session, url)
        start = time.perf_counter()
        stop_at = start + duration if duration else None

        def take() -> int | None:
            nonlocal sent
            if requests is not None and sent >= requests:
                return None
            if stop_at is not None and time.perf_counter() >= stop_at:
                return None
            sent += 1
            return sent - 1

        async def worker() -> None:
            while (index := take()) is not None:
                if rps:  # open-loop pacing: request i leaves at start + i / rps
                    delay = start + index / rps - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                body, content_type = images[index % len(images)]
                t0 = time.perf_counter()
                try:
                    async with session.post(f"{url}{path}", data=body, headers={"Content-Type": content_type},
                                            timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
                        await r.read()
                        status = r.status
                except (TimeoutError, aiohttp.ClientError) as err:
                    errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        after = await scrape_batches(session, url)
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    histogram, mean_batch = {}, None
    if after[0]:
        previous = 0.0
        for le, cumulative in after[0].items():
            count = cumulative - before[0].get(le, 0.0)
            if count - previous > 0:
                histogram[f"<={le}"] = int(count - previous)
            previous = count
        calls = after[2] - before[2]
        mean_batch = (after[1] - before[1]) / calls if calls else None
    return LoadResult(requests=sent, ok=len(latencies), elapsed_s=elapsed, rps=len(latencies) / elapsed,
                      p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
                      p99_ms=float(np.percentile(ms, 99)), max_ms=float(ms.max()), errors=errors,
                      batch_histogram=histogram, mean_batch=mean_batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rps", type=float, help="pace requests to this rate (default: as fast as answered)")
    parser.add_argument("--images", type=Path, help="folder of .jpg/.png/.webp (default: synthetic JPEGs)")
    parser.add_argument("--api-key")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", type=Path, help="also write the result as JSON")
    args = parser.parse_args()
    images = folder_images(args.images) if args.images else synthetic_images()
    result = asyncio.run(run_load(args.url, images, concurrency=args.concurrency, requests=args.requests,
                                  duration=None if args.requests else args.duration, rps=args.rps,
                                  api_key=args.api_key, timeout_s=args.timeout))
    print(result.table())
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
