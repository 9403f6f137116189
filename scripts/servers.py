"""The two servers of the HTTP contract, started for a script from a quick run as a user would run them: the Go
server of an exported bundle with real Redis and PostgreSQL on loopback, or the Ray Serve preview. Used by
scripts/fuzz_contract.py and scripts/soak.py (bench_server.py builds its bundles the same way)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

KEY = "script-key"


@dataclass
class Served:
    url: str
    headers: dict[str, str]
    pid: int  # the server process (the Go binary, or the Ray Serve replica's actor)
    run_dir: Path
    redis: object | None = None  # tests.services.Service, for the Go server
    postgres: object | None = None
    extra: dict = field(default_factory=dict)


def quick_run(work: Path, imgsz: int, max_batch: int) -> Path:
    from bench_preview import build_run

    return build_run(work / f"run{imgsz}", imgsz, max_batch)


@contextmanager
def go_server(work: Path, imgsz: int = 128, max_batch: int = 4, max_queue: int = 64,
              env: dict[str, str] | None = None) -> Iterator[Served]:
    """A quick run's bundle, its own binary on a free port, with fresh Redis and PostgreSQL."""
    from yoloforge.serving.bundle import ServerSettings, export_bundle

    from tests.services import bundle_server, postgres_server, redis_server

    run_dir = quick_run(work, imgsz, max_batch)
    bundle = export_bundle(run_dir, settings=ServerSettings(max_batch_size=max_batch, max_queue=max_queue)).out_dir
    with redis_server(work / "redis") as redis, postgres_server(work / "pg") as postgres:
        base = {"YOLOFORGE_API_KEYS": KEY, "YOLOFORGE_POSTGRES_DSN": postgres.url, "YOLOFORGE_REDIS_ADDR": redis.url,
                "YOLOFORGE_LOG_LEVEL": "warn", **(env or {})}
        with bundle_server(bundle, base, work / "server.log") as server:
            yield Served(server.url, {"Authorization": f"Bearer {KEY}"}, server.process.pid, run_dir, redis,
                         postgres, {"bundle": bundle, "env": base, "process": server.process,
                                    "log": work / "server.log"})


@contextmanager
def preview_server(work: Path, imgsz: int = 128, max_batch: int = 4, max_queue: int = 64) -> Iterator[Served]:
    """A quick run behind the Ray Serve preview on a free port, on a local Ray started here."""
    import ray
    from yoloforge.serving import preview

    from tests.services import free_port

    run_dir = quick_run(work, imgsz, max_batch)
    preview.use_haproxy_ingress()  # as `yoloforge preview` does
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        url = preview.start(str(run_dir), port=free_port(), max_batch_size=max_batch, batch_wait_ms=10,
                            max_queued_requests=max_queue)
        yield Served(url, {}, replica_pid(), run_dir)
    finally:
        preview.stop()
        ray.shutdown()


def replica_pid() -> int:
    """The process of the preview's one replica (where the engine and its memory are): Ray names an actor's
    process `ray::ServeReplica:<app>:<deployment>`."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if any("ServeReplica:yoloforge" in part for part in proc.info["cmdline"] or ()):
            return proc.pid
    return 0
