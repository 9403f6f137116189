"""README's Python code blocks run as written, in order, in one namespace, as a user would paste them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_has_python_blocks_to_run():
    assert len(python_blocks()) >= 4


def test_readme_python_blocks_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for block in python_blocks():
        exec(compile(block, f"{README}:python block", "exec"), namespace)
    out = capsys.readouterr().out
    import yoloforge

    assert out.startswith(yoloforge.__version__ + "\n") and yoloforge.__version__ != "0+unknown"
    assert (tmp_path / "runs" / "shapes" / "dataset_report.json").is_file()  # the job ran up to intake
    best = namespace["best"]
    assert abs(best["x"] - 1) < 0.3 and abs(best["lr"] - 0.01) < 0.01  # the GA example found the minimum region


def test_import_yoloforge_gives_the_installed_version():
    from importlib.metadata import version

    import yoloforge

    assert yoloforge.__version__ == version("yoloforge")
