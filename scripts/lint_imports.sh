#!/usr/bin/env bash
# The layers of .importlinter, checked on yoloforge as pip installs it (one folder, yoloforge/, holding every
# layer). In the source tree the layers are folders beside api/ (pyproject.toml's package-dir), and the import
# graph builder (grimp) walks only the folder of the root package.
set -euo pipefail
cd "$(dirname "$0")/.."
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
rm -rf build  # setuptools' build folder keeps modules deleted from the source: they are not what pip installs now
python3 -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --target "$site" . >/dev/null
PYTHONPATH="$site" lint-imports --no-cache
