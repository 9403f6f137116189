#!/usr/bin/env bash
# Installs what the tests run for real besides Python, from Debian's packages: Redis and PostgreSQL (the tests
# start their own servers on loopback), wrk (bench_server.py), Chromium (report.html), a C compiler and
# libjpeg-turbo's TurboJPEG (the server is built with cgo and links it into its binary); then checks for Go.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v gcc >/dev/null || missing+=(gcc)
[ -f /usr/include/turbojpeg.h ] || missing+=(libturbojpeg0-dev)  # the server links libjpeg-turbo (cgo)
command -v wrk >/dev/null || missing+=(wrk)  # bench_server.py's client where Python's is the limit
command -v chromium >/dev/null || missing+=(chromium)  # renders report.html in tests/test_report.py
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # the package starts system services; the tests run their own on free ports
  $sudo_cmd systemctl disable --now redis-server postgresql >/dev/null 2>&1 || true
fi
if ! command -v go >/dev/null; then
  echo "Go is needed to build the server (serving/gateway): https://go.dev/dl/ (1.26 or newer)" >&2
  exit 1
fi
