"""The golden vectors the Go server's tests read (scripts/make_gateway_golden.py) are what the Python side gives
today: a change to pre-processing, post-processing or batch planning on one side shows up as a failing test
until the vectors are regenerated and the other side agrees."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = ROOT / "serving/gateway/internal"
FILES = ("yolo/testdata/resize_golden.json", "yolo/testdata/postprocess_golden.json",
         "engine/testdata/plan_golden.json", "jpegturbo/testdata/decode_golden.json",
         "yolo/testdata/decode_size_golden.json")


def _differences(got: object, want: object, where: str = "") -> list[str]:
    """Where two JSON documents differ; floats within 1e-6 are equal (the last bits may differ by CPU)."""
    if isinstance(got, dict) and isinstance(want, dict):
        if got.keys() != want.keys():
            return [f"{where}: keys {sorted(got)} vs {sorted(want)}"]
        return [d for k in got for d in _differences(got[k], want[k], f"{where}.{k}")]
    if isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items vs {len(want)}"]
        return [d for i, (a, b) in enumerate(zip(got, want, strict=True)) for d in _differences(a, b, f"{where}[{i}]")]
    if isinstance(got, float) or isinstance(want, float):
        ok = isinstance(got, int | float) and isinstance(want, int | float) and math.isclose(got, want, abs_tol=1e-6)
        return [] if ok else [f"{where}: {got} vs {want}"]
    return [] if got == want else [f"{where}: {got!r} vs {want!r}"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("golden")
    subprocess.run([sys.executable, str(ROOT / "scripts/make_gateway_golden.py"), "--out", str(out)], check=True,
                   capture_output=True)
    return out


@pytest.mark.parametrize("name", FILES)
def test_checked_in_golden_vectors_are_what_python_gives_today(regenerated: Path, name: str) -> None:
    got = json.loads((regenerated / name).read_text())
    want = json.loads((INTERNAL / name).read_text())
    differences = _differences(got, want)
    assert not differences, (f"{name} is stale ({len(differences)} differences, first: {differences[:3]}): run "
                             "`python scripts/make_gateway_golden.py`, then `go test ./...` in serving/gateway")
