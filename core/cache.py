"""The one user cache folder (YOLOFORGE_CACHE, else ~/.cache/yoloforge): downloaded weights, built bundle parts
and the model files `yoloforge track --model` exports live in folders under it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("YOLOFORGE_CACHE", Path.home() / ".cache" / "yoloforge"))
