"""The Ray session every Ray-using stage runs in: join the job's cluster or start a local one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from yoloforge.core.errors import YoloforgeError
from yoloforge.ray_app.console import console


def init_options(address: str | None, dashboard: bool) -> dict[str, object]:
    """ray.init's arguments for resources.address and resources.dashboard (a joined cluster runs its own
    dashboard, so the setting is a local Ray's)."""
    return {"address": address, "include_dashboard": dashboard if address is None else None,
            "log_to_driver": False, "configure_logging": False}


@contextmanager
def ray_session(address: str | None, dashboard: bool = True) -> Iterator[None]:
    """Join the given cluster or start a local one; shut down only what this process started."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address is None:
        # a laptop search needs no network: Ray binds to loopback (a cluster is joined through its address)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        context = ray.init(**init_options(address, dashboard))
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise YoloforgeError(f"cannot connect to the Ray cluster at {address}: {err}",
                             fix="check resources.address (ray://host:10001 or auto) and that the cluster runs") \
            from None
    url = getattr(context, "dashboard_url", None)
    if url:
        console.print(f"Ray dashboard: http://{url}")
    try:
        yield
    finally:
        ray.shutdown()

