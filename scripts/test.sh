#!/usr/bin/env bash
# The test command of README.md: installs everything the tests need, lints, then runs the whole suite:
# the Go server's unit tests and short fuzz runs, then pytest. CI (.ci/run) calls exactly this.
# Extra arguments go to pytest (e.g. -k intake).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_services.sh
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev]"
python3 -m ruff check .
bash scripts/lint_imports.sh  # the layers of .importlinter: runs > ray_app > serving > engines > ga > core
(
  cd serving/gateway
  export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g -Wno-deprecated-declarations}"  # go-nvml's deprecated NVML calls
  unformatted=$(gofmt -l .)
  if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
  go vet ./...
  go test ./...
  go test -run='^$' -fuzz=FuzzDecode -fuzztime=10s ./internal/yolo
  go test -run='^$' -fuzz=FuzzParseRequest -fuzztime=10s ./internal/api
)
# a crash in native code (even at interpreter exit, after the summary) prints every thread's Python stack.
# Two worker processes, a test module each at a time (--dist loadfile keeps a module's shared fixtures in one
# process): much of the suite waits on servers, Ray and load that runs for a set time, and the two overlap
# (docs/architecture.md, "How the suite is built"). --no-loadscope-reorder keeps conftest's longest-first order
# (xdist would start the modules with the most tests first). -n 0 runs it in one process.
PYTHONFAULTHANDLER=1 python3 -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25 "$@"
