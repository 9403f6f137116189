"""Building the bundle's image through the Docker SDK (`yoloforge export --build`, export.build_image)."""

from __future__ import annotations

import json
from pathlib import Path

from yoloforge.serving.bundle.toolchain import BundleError


def build_image(bundle_dir: str | Path, tag: str | None = None) -> str:
    """docker build of the bundle through the Docker SDK; a clear BundleError where no Docker engine answers."""
    bundle_dir = Path(bundle_dir)
    info = json.loads((bundle_dir / "bundle.json").read_text())
    tag = tag or info["image"]
    try:
        import docker
    except ImportError as exc:
        raise BundleError("the docker Python package is missing: pip install docker") from exc
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise BundleError(f"no Docker engine answers here ({type(exc).__name__}): the bundle is complete in "
                          f"{bundle_dir}; build it where Docker runs with `docker compose build`") from exc
    dockerfile = info.get("dockerfile") or (  # bundles written before bundle.json named it
        "Dockerfile.cuda" if info["config"]["engine"]["provider"] in ("cuda", "tensorrt") else "Dockerfile")
    try:
        client.images.build(path=str(bundle_dir), dockerfile=dockerfile, tag=tag, rm=True)
    except Exception as exc:
        raise BundleError(f"docker build of {bundle_dir} failed: {exc}") from exc
    return tag
