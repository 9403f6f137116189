"""What `pip install` ships: every package of the source tree, and no Python file grown past its concern."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_of_the_source_tree_is_installed():
    # setuptools installs only the packages pyproject lists; an editable install finds the others anyway, so a
    # package left out passes here and breaks every wheel and clean install
    setuptools = _pyproject()["tool"]["setuptools"]
    folders = {name: ROOT / folder for name, folder in setuptools["package-dir"].items()}
    found = set()
    for name, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            if "gateway" in parts or "templates" in parts:
                continue
            found.add(".".join((name, *parts)))
    assert found - set(setuptools["packages"]) == set(), "add them to [tool.setuptools] packages"


def test_no_file_is_ignored_by_git_that_a_package_holds():
    import subprocess

    ignored = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--", *[
        str(ROOT / folder) for folder in _pyproject()["tool"]["setuptools"]["package-dir"].values()]],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert [f for f in ignored if f.endswith(".py") and "__pycache__" not in f] == []


def test_no_python_file_of_ray_app_or_serving_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for folder in ("ray_app", "serving") for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}, "split them by concern (docs/architecture.md)"
