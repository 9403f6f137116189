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
# the arm64 bundle (tests/test_edge_bundle.py): Debian's aarch64 cross compiler, libjpeg-turbo and the C/C++
# libraries for arm64 (multiarch), so the server cross-compiles with cgo and runs under qemu-user
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -f /usr/lib/aarch64-linux-gnu/libturbojpeg.a ] || missing+=(libturbojpeg0-dev:arm64)
[ -f /usr/lib/aarch64-linux-gnu/libstdc++.so.6 ] || missing+=(libc6:arm64 libstdc++6:arm64)
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages"
  dpkg --print-foreign-architectures | grep -qx arm64 || $sudo_cmd dpkg --add-architecture arm64
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # the package starts system services; the tests run their own on free ports
  $sudo_cmd systemctl disable --now redis-server postgresql >/dev/null 2>&1 || true
fi
# qemu-user 8 or newer runs the arm64 server (bookworm's 7.2 crashes loading ONNX Runtime's aarch64 library):
# Debian 13's qemu-user, whose emulators are static, unpacked into /usr/local/bin
if ! qemu-aarch64 --version 2>/dev/null | grep -qE 'version (8|9|[1-9][0-9])\.'; then
  echo "installing qemu-aarch64 from Debian 13's qemu-user"
  trixie=$(mktemp -d) && chmod 755 "$trixie"  # apt fetches as its _apt user
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    > "$trixie/sources.list"
  apt_trixie=(-o "Dir::Etc::sourcelist=$trixie/sources.list" -o Dir::Etc::sourceparts=- \
              -o "Dir::State::Lists=$trixie/lists" -o "Dir::Cache::archives=$trixie")
  mkdir -p "$trixie/lists/partial" "$trixie/partial"
  $sudo_cmd apt-get "${apt_trixie[@]}" update -qq
  (cd "$trixie" && $sudo_cmd apt-get "${apt_trixie[@]}" download qemu-user >/dev/null 2>&1)
  dpkg-deb -x "$trixie"/qemu-user_*.deb "$trixie/x"
  $sudo_cmd install -m 755 "$trixie/x/usr/bin/qemu-aarch64" /usr/local/bin/qemu-aarch64
  $sudo_cmd rm -rf "$trixie"
fi
if ! command -v go >/dev/null; then
  echo "Go is needed to build the server (serving/gateway): https://go.dev/dl/ (1.26 or newer)" >&2
  exit 1
fi
