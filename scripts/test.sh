#!/usr/bin/env bash
# The test command of README.md: installs everything the tests need, lints, then runs the whole suite.
# CI (.ci/run) calls exactly this. Extra arguments go to pytest (e.g. -k intake).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"
python3 -m ruff check .
python3 -m pytest -q "$@"
