"""The export: section of job.yaml (the deployable bundle), apart from the other sections of
ray_app/spec_sections.py."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from yoloforge.ray_app.spec_sections import Strict
from yoloforge.serving.bundle import ServerSettings
from yoloforge.serving.bundle.platform import Platform, platform_named


class ExportSpec(Strict):
    """The deployable bundle's Go server (`yoloforge export RUN_DIR`); the engines stage ranks configurations
    through a bundle made with these same settings."""

    build_image: bool = Field(False, description="Also build the Docker image at the end of `yoloforge run` "
                              "(needs a Docker engine)")
    port: int = Field(8080, ge=1, le=65535, description="The API's port: config.yaml's listen address, the image's "
                      "EXPOSE and docker-compose's published port")
    max_batch: int | None = Field(None, ge=1, le=256, description="Dynamic batching limit of the server; default: "
                                  "the selected engine's batch, at least 8")
    max_wait_ms: float = Field(5, ge=0, le=1000, description="How long a batch waits to fill")
    max_queue: int = Field(64, ge=1, le=100_000, description="Queue bound; beyond it requests get 503 + Retry-After")
    concurrent_batches: int = Field(2, ge=1, le=16, description="Engine workers, so the next batch is prepared "
                                    "while the engine runs one (the preview's rule)")
    max_body_mb: float = Field(10, gt=0, le=512, description="Largest accepted request body")
    cache_ttl_s: int = Field(3600, ge=0, description="Seconds an answer stays in the Redis cache; 0: no cache")
    streams: bool = Field(True, description="Ship the stream service: video tracking at the API's /v1/streams")
    platform: Literal["linux/amd64", "linux/arm64", "jetson"] | None = Field(
        None, description="The machine the bundle is built for (`yoloforge export --platform`): linux/arm64 for a "
        "Raspberry Pi 5, a Graviton server or an Orin's CPU, cross-compiled and checked under qemu-user emulation; "
        "jetson for an NVIDIA Jetson on JetPack 6 (TensorRT on its GPU; not verified on a device); default: this "
        "machine's")

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, value: Any) -> Any:
        """`out` and `variant` were written into every job.yaml before anything read them: their old defaults are
        accepted (and dropped) so existing run directories still load; any other value is explained."""
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for key, default, instead in (("out", "bundle", "`yoloforge export RUN_DIR --out DIR`"),
                                      ("variant", "auto", "the bundle follows the selected engine's device "
                                                          "(targets.device)")):
            if key in value:
                if value[key] != default:
                    raise ValueError(f"export.{key} is no longer a setting: use {instead}")
                del value[key]
        return value

    def server(self) -> ServerSettings:
        """The settings the bundle's server is written with (serving/bundle/)."""
        return ServerSettings(port=self.port, max_batch_size=self.max_batch, batch_wait_ms=self.max_wait_ms,
                              max_queue=self.max_queue, concurrent_batches=self.concurrent_batches,
                              max_body_mb=self.max_body_mb, cache_ttl_s=self.cache_ttl_s, streams=self.streams)

    def target_platform(self) -> Platform:
        """The platform the bundle is built for (serving/bundle/platform.py)."""
        return platform_named(self.platform)
