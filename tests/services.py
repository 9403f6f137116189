"""Real Redis and PostgreSQL servers on loopback for tests and benchmarks, from Debian's packages.

Each runs from its own temporary directory on a free port and is stopped (and its data removed) at the end.
PostgreSQL refuses to run as root, so as root it runs as the `postgres` user that Debian's package creates."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from yoloforge.core.ports import free_port


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Poll condition until it holds (True) or the timeout passes (False)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def missing_services() -> str | None:
    """Why the services cannot start here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if _pg_bin("initdb") is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    return None


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@dataclass
class Service:
    port: int
    process: subprocess.Popen
    url: str
    own_group: bool = False  # started in its own session (PostgreSQL)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: its whole process group when it has its own (PostgreSQL's
        backends must go with the postmaster, or the restart finds their shared memory in use)."""
        if self.own_group:
            os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.kill()
        self.process.wait(15)

    def start_again(self) -> None:
        """The same command on the same port and data directory (PostgreSQL recovers from its WAL)."""
        deadline = time.monotonic() + 30
        while True:
            self.process = subprocess.Popen(self.process.args, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=self.own_group)
            try:
                wait_for_port(self.port, timeout=2)
                return
            except TimeoutError:
                # PostgreSQL refuses to start while its killed postmaster's PID is still a zombie
                if self.process.poll() is None or time.monotonic() > deadline:
                    raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def redis_server(workdir: Path) -> Iterator[Service]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    service = Service(port, proc, f"127.0.0.1:{port}")
    try:
        wait_for_port(port)
        yield service
    finally:
        service.stop()


@contextmanager
def postgres_server(workdir: Path) -> Iterator[Service]:
    """A fresh cluster with database and user `yoloforge` (password `yoloforge`)."""
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        # the postgres user must reach its directory: pytest's tmp dirs are private to root
        workdir = Path(tempfile.mkdtemp(prefix="yoloforge-pg-"))
        shutil.chown(workdir, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = workdir / "pgdata"
    workdir.mkdir(parents=True, exist_ok=True)
    pwfile = workdir / "pw"
    pwfile.write_text("yoloforge\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run([*as_user, _pg_bin("initdb"), "-D", str(data), "-U", "yoloforge", "--pwfile", str(pwfile),
                    "-A", "scram-sha-256", "--no-sync"], check=True, capture_output=True)
    proc = subprocess.Popen([*as_user, _pg_bin("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                             "-k", str(workdir), "-c", "fsync=off", "-c", "full_page_writes=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    service = Service(port, proc, f"postgres://yoloforge:yoloforge@127.0.0.1:{port}/postgres?sslmode=disable",
                      own_group=True)
    try:
        wait_for_port(port)
        for _ in range(50):  # accepting TCP is not yet accepting queries
            ok = subprocess.run([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
            if ok.returncode == 0:
                break
            time.sleep(0.2)
        subprocess.run([_pg_bin("psql"), service.url, "-q", "-c", "CREATE DATABASE yoloforge"], check=True,
                       capture_output=True)
        service.url = f"postgres://yoloforge:yoloforge@127.0.0.1:{port}/yoloforge?sslmode=disable"
        yield service
    finally:
        service.stop()
        if as_user:
            shutil.rmtree(workdir, ignore_errors=True)


def psql(url: str, sql: str) -> str:
    """One query's rows, as psql -At prints them."""
    out = subprocess.run([_pg_bin("psql"), url, "-At", "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@contextmanager
def bundle_server(bundle: Path, env: dict[str, str], log: Path) -> Iterator[Service]:
    """The bundle's own binary, started as a user would, until /readyz says loaded (serving.bundle.bundle_process)."""
    from yoloforge.serving.bundle import bundle_process

    port = free_port()
    with bundle_process(bundle, env, log, port) as (proc, url):
        yield Service(port, proc, url)
