"""What the bundle is built from: the Go server compiled from serving/gateway (cached by its source's digest),
ONNX Runtime's C library, and ONNX Runtime's OpenVINO build."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from yoloforge.core.cache import cache_root
from yoloforge.serving.bundle.errors import BundleError
from yoloforge.serving.bundle.platform import Platform, host

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
ORT_GPU_VERSION = "1.31.1"  # newest onnxruntime-gpu on PyPI; the CUDA image's wheel is pinned by this hash
ORT_GPU_WHEEL = f"onnxruntime_gpu-{ORT_GPU_VERSION}-cp312-cp312-manylinux_2_28_x86_64.whl"
ORT_GPU_SHA256 = "05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7"
SERVER = "yoloforge-server"


# ONNX Runtime's OpenVINO build: the newest onnxruntime-openvino on PyPI, whose C API (version 24) is the one the
# server's onnxruntime_go speaks. The bundle ships these of its wheel's libraries (CPU plugin only, 127 MB).
OPENVINO_ORT_VERSION = "1.24.1"


OPENVINO_LIBRARIES = ("libonnxruntime.so.1.24.1", "libonnxruntime_providers_shared.so",
                      "libonnxruntime_providers_openvino.so", "libopenvino.so.2541",
                      "libopenvino_onnx_frontend.so.2541", "libopenvino_intel_cpu_plugin.so", "libtbb.so.12")


def build_cache() -> Path:
    """Where the bundle's built parts are kept between exports: YOLOFORGE_BUILD_CACHE, else build/ in the
    yoloforge cache (YOLOFORGE_CACHE, ~/.cache/yoloforge). Each part is named by everything that went into it
    (source digest, toolchain, platform, library version), so a stale one is never used."""
    explicit = os.environ.get("YOLOFORGE_BUILD_CACHE")
    if explicit:
        return Path(explicit)
    return cache_root() / "build"


@functools.cache
def _go_version(go: str) -> str:
    """The Go version a build is made with, e.g. go1.26.0."""
    proc = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def gateway_digest() -> str:
    """A hash of the server's source (Go files, SQL, go.mod/go.sum), naming its cached build."""
    h = hashlib.sha256()
    for path in sorted(GATEWAY.rglob("*")):
        if path.is_file() and (path.suffix in (".go", ".sql") or path.name in ("go.mod", "go.sum")):
            h.update(str(path.relative_to(GATEWAY)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def server_build_path(go: str, platform: Platform | None = None) -> Path:
    """Where the server built from this source with this Go toolchain for this platform is kept."""
    platform = platform or host()
    return build_cache() / "gateway" / f"{gateway_digest()}-{_go_version(go)}-{platform.slug}" / SERVER


def build_server(platform: Platform | None = None) -> Path:
    """Compile serving/gateway for platform (default this machine's; another architecture is cross-compiled with
    Debian's C cross compiler, cgo included), kept in the build cache under its source digest, Go toolchain and
    platform. Needs Go; the first build fetches Go modules (then it works offline)."""
    platform = platform or host()
    go = shutil.which("go")
    if go is None:
        raise BundleError("compiling the server needs Go (https://go.dev/dl/, 1.26 or newer) on PATH; "
                          "install it and run the export again")
    out = server_build_path(go, platform)
    if out.is_file():
        return out
    cc = platform.cc()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    # go-nvml's generated cgo wrappers call NVML functions its header marks deprecated: quiet, not failing
    env = {"CGO_CFLAGS": "-O2 -g -Wno-deprecated-declarations", **os.environ, "CGO_ENABLED": "1",
           "GOOS": "linux", "GOARCH": platform.goarch, **({"CC": cc} if cc else {})}
    proc = subprocess.run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tmp), f"./cmd/{SERVER}"],
                          cwd=GATEWAY, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 and "turbojpeg" in proc.stderr:
        package = "libturbojpeg0-dev" if platform.native else f"libturbojpeg0-dev:{platform.goarch}"
        raise BundleError("compiling the server needs libjpeg-turbo's TurboJPEG library and header, which it links "
                          f"into the binary (turbojpeg.h, libturbojpeg.a): install Debian/Ubuntu's {package} "
                          f"(apt-get install {package}) and run the export again")
    if proc.returncode != 0:
        raise BundleError(f"compiling the server failed (go build in {GATEWAY}):\n{proc.stderr.strip()[-3000:]}\n"
                          "A C compiler is needed (cgo), and the Go module proxy must be reachable the first time.")
    tmp.replace(out)
    return out


def _wheel_libraries(requirement: str, pip_args: list[str], folder: Path, wanted: Callable[[str], bool],
                     unreachable: str) -> list[Path]:
    """The shared libraries of requirement's wheel (pip download with pip_args, never installed) whose names
    wanted accepts, unpacked once into folder in the build cache; unreachable says what pip's failure means."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", requirement, "--no-deps",
                               "--only-binary=:all:", *pip_args, "--dest", tmp, "--quiet"], capture_output=True,
                              text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise BundleError(f"{unreachable}, and pip could not fetch it: "
                              f"{(proc.stderr or proc.stdout).strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            names = [n for n in wheel.namelist() if n.startswith("onnxruntime/capi/") and wanted(Path(n).name)]
            if not names:
                raise BundleError(f"{wheels[0].name} holds none of the libraries the bundle needs: report it to "
                                  "yoloforge")
            build_cache().mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".wheel-", dir=build_cache()))
            for name in names:
                (staging / Path(name).name).write_bytes(wheel.read(name))
    if folder.exists():
        shutil.rmtree(staging)  # another process (a parallel export, a test worker) put them there first
    else:
        staging.rename(folder)
    return sorted(folder.iterdir())


def openvino_runtime() -> list[Path]:
    """ONNX Runtime's OpenVINO build, its libraries taken once from the onnxruntime-openvino wheel on PyPI into
    the cache (installing the wheel would replace the onnxruntime Python package yoloforge uses)."""
    folder = build_cache() / f"onnxruntime-openvino-{OPENVINO_ORT_VERSION}-{sysconfig.get_platform()}"
    files = [folder / name for name in OPENVINO_LIBRARIES]
    if not all(f.is_file() for f in files):
        shutil.rmtree(folder, ignore_errors=True)  # a folder left incomplete is unpacked again
        _wheel_libraries(f"onnxruntime-openvino=={OPENVINO_ORT_VERSION}", [], folder,
                         lambda name: name in OPENVINO_LIBRARIES,
                         f"the bundle of an OpenVINO selection needs ONNX Runtime's OpenVINO build "
                         f"(onnxruntime-openvino {OPENVINO_ORT_VERSION}, an 84 MB download from PyPI, once). Connect "
                         "to PyPI once, or leave openvino out of engines.backends and re-run `yoloforge bench`")
    return files


def ort_library(platform: Platform | None = None) -> Path:
    """ONNX Runtime's C library for platform, at the version of the onnxruntime yoloforge installs (the one it
    benchmarked): this machine's from the installed package; another architecture's from that version's wheel
    for it on PyPI, downloaded once into the build cache (never installed)."""
    import onnxruntime

    if platform is None or platform.native:
        capi = Path(onnxruntime.__file__).parent / "capi"
        found = sorted(capi.glob("libonnxruntime.so.*"))
        if not found:
            raise BundleError(f"no libonnxruntime.so.* in {capi}: reinstall onnxruntime (pip install onnxruntime)")
        return found[-1]
    version = onnxruntime.__version__
    folder = build_cache() / f"onnxruntime-{version}-{platform.slug}"
    found = sorted(folder.glob("libonnxruntime.so.*"))
    if not found:
        tags = [arg for tag in platform.wheel_platforms for arg in ("--platform", tag)]
        _wheel_libraries(f"onnxruntime=={version}", tags, folder, lambda name: name.startswith("libonnxruntime.so."),
                         f"the {platform.name} bundle needs ONNX Runtime's C library for {platform.machine} "
                         f"(onnxruntime {version}'s wheel for it, about 20 MB from PyPI, once). Connect to PyPI once")
        found = sorted(folder.glob("libonnxruntime.so.*"))
    return found[-1]


def listed_overrides(binary: Path, platform: Platform | None = None) -> list[str]:
    """The server's environment overrides, as the server itself lists them (`yoloforge-server config -list`), so
    the bundle's README and the code cannot disagree."""
    run = (platform or host()).command(str(binary))
    listed = subprocess.run([*run, "config", "-list"], capture_output=True, text=True, check=True, timeout=300)
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]
