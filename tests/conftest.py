from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

os.environ.setdefault("COLUMNS", "200")  # before rich's console is created: no wrapped lines in CLI output
# every Ray a test starts listens on loopback only (Ray's "no multi-node" switch makes it bind 127.0.0.1)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from ray_app.intake.synth import synth_dataset


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> content hash of every file under root: proves a check left the user's files alone."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def detect_ds(tmp_path: Path) -> Path:
    return synth_dataset(tmp_path / "detect", "detect", n_train=10, n_val=5, imgsz=64, seed=1)


@pytest.fixture
def segment_ds(tmp_path: Path) -> Path:
    return synth_dataset(tmp_path / "segment", "segment", n_train=10, n_val=5, imgsz=64, seed=2)


@pytest.fixture
def classify_ds(tmp_path: Path) -> Path:
    return synth_dataset(tmp_path / "classify", "classify", n_train=12, n_val=6, imgsz=64, seed=3)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights cache per test, so no test sees another's downloads."""
    monkeypatch.setenv("YOLOFORGE_CACHE", str(tmp_path / "cache"))
