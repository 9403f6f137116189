"""The Go server under load while its dependencies fail: Redis killed and brought back, PostgreSQL killed and
brought back, both restarted, and SIGTERM. No admitted request fails because of a dependency, in-flight
requests finish on SIGTERM, and every answered request is accounted for in the inference log: rows written
plus rows counted as dropped equals requests answered. Seconds of load each (scripts/soak.py runs minutes)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from yoloforge.serving.soak import Outcome, base_images, drive, metric_values

from tests.services import bundle_server, missing_services, postgres_server, psql, redis_server

pytestmark = pytest.mark.skipif(missing_services() is not None, reason=str(missing_services()))

ROOT = Path(__file__).resolve().parents[1]
KEY = "faults-key"
RATE = 40.0  # requests a second: well within the server's capacity, so every good image is admitted


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """An untrained yolo11n at 128 px (nothing trained: these tests are about the server, not the model)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from servers import quick_run
    from yoloforge.serving.bundle import ServerSettings, export_bundle

    run_dir = quick_run(tmp_path_factory.mktemp("faults"), 128, 4)
    return export_bundle(run_dir, settings=ServerSettings(max_batch_size=4, max_queue=64)).out_dir


@pytest.fixture
def stack(bundle, tmp_path):  # type: ignore[no-untyped-def]
    """Fresh Redis, PostgreSQL and server for each test: (server, redis, postgres, server log)."""
    log = tmp_path / "server.log"
    with redis_server(tmp_path / "redis") as redis, postgres_server(tmp_path / "pg") as postgres:
        env = {"YOLOFORGE_API_KEYS": KEY, "YOLOFORGE_REDIS_ADDR": redis.url, "YOLOFORGE_POSTGRES_DSN": postgres.url,
               "YOLOFORGE_LOG_LEVEL": "info"}
        with bundle_server(bundle, env, log) as server:
            yield server, redis, postgres, log


def load_with(url: str, seconds: float, faults: list[tuple[float, Callable[[], None]]]) -> Outcome:
    """Drive the server for `seconds` while each fault runs at its time (seconds after the start)."""
    result: dict[str, Outcome] = {}
    runner = threading.Thread(target=lambda: result.update(outcome=asyncio.run(
        drive(url, rate=RATE, duration_s=seconds, headers={"Authorization": f"Bearer {KEY}"}, window_s=1.0))))
    start = time.monotonic()
    runner.start()
    for at, fault in faults:
        time.sleep(max(0.0, start + at - time.monotonic()))
        fault()
    runner.join(seconds + 60)
    return result["outcome"]


def logged_rows(postgres) -> int:  # type: ignore[no-untyped-def]
    return int(psql(postgres.url, "SELECT count(*) FROM inference_log"))


def dropped_rows(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return metric_values(text, ("yoloforge_log_rows_dropped_total",)).get("yoloforge_log_rows_dropped_total", 0.0)


def assert_accounted(url: str, postgres, outcome: Outcome) -> None:  # type: ignore[no-untyped-def]
    """Rows written + rows dropped = requests answered, once the writer has flushed (it writes every second)."""
    deadline = time.monotonic() + 20
    while True:
        written, dropped = logged_rows(postgres), dropped_rows(url)
        if written + dropped == outcome.answered or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert written + dropped == outcome.answered, (written, dropped, outcome.answers)


def assert_no_dependency_failure(outcome: Outcome) -> None:
    assert outcome.failures == {}, (outcome.failures, outcome.answers)
    assert outcome.answers.get("200", 0) > 0.8 * RATE * 4


def test_redis_killed_and_back_under_load_fails_no_request(stack):
    server, redis, postgres, _ = stack
    outcome = load_with(server.url, 6, [(1.5, redis.kill), (3.5, redis.start_again)])
    assert_no_dependency_failure(outcome)
    assert_accounted(server.url, postgres, outcome)
    deadline = time.monotonic() + 10  # /readyz checks its dependencies every 2 s
    while (ready := httpx.get(f"{server.url}/readyz", timeout=5).json())["dependencies"]["cache"] != "up":
        assert time.monotonic() < deadline, ready  # reconnected
        time.sleep(0.5)


def test_postgres_killed_and_back_under_load_fails_no_request_and_logs_every_row(stack):
    server, _, postgres, _ = stack
    outcome = load_with(server.url, 6, [(1.5, postgres.kill), (3.5, postgres.start_again)])
    assert_no_dependency_failure(outcome)
    assert_accounted(server.url, postgres, outcome)
    assert dropped_rows(server.url) == 0, "two seconds of rows fit the backlog: none is dropped"


def test_both_restarted_under_load_fail_no_request(stack):
    server, redis, postgres, _ = stack

    def restart_both() -> None:
        redis.kill()
        postgres.kill()
        redis.start_again()
        postgres.start_again()

    outcome = load_with(server.url, 6, [(2.0, restart_both)])
    assert_no_dependency_failure(outcome)
    assert_accounted(server.url, postgres, outcome)


def test_sigterm_under_load_finishes_the_requests_in_flight_and_accounts_every_row(stack):
    server, _, postgres, log = stack

    async def in_flight_then_sigterm() -> list[int]:
        images = base_images(16, seed=7)  # never sent before: none is a cache hit
        async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as client:
            sent = [asyncio.create_task(client.post(f"{server.url}/v1/predict", content=body,
                                                    headers={"Content-Type": "image/jpeg"})) for body in images]
            await asyncio.sleep(0.05)  # on loopback the requests are read by now; 16 take longer to answer
            server.process.send_signal(signal.SIGTERM)
            return [r.status_code for r in await asyncio.gather(*sent)]

    outcome = load_with(server.url, 2, [])
    statuses = asyncio.run(in_flight_then_sigterm())
    assert statuses == [200] * 16, statuses
    assert server.process.wait(30) == 0, log.read_text()[-2000:]
    closed = [json.loads(line) for line in log.read_text().splitlines()
              if line.startswith("{") and "inference log closed" in line]
    assert closed, log.read_text()[-2000:]
    answered = outcome.answered + len(statuses)
    assert closed[-1]["written"] + closed[-1]["dropped"] == answered, (closed[-1], answered)
    assert logged_rows(postgres) == closed[-1]["written"]
    assert not re.search(r'"level":"ERROR"', log.read_text())
