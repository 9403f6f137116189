"""The machine a bundle is built for (`yoloforge export --platform`): the one owner of what differs between
linux/amd64 and linux/arm64 — the Go target, the C cross compiler, ONNX Runtime's wheel, the image's platform,
and how this machine runs the bundle's binary (natively, or under qemu-user for another architecture)."""

from __future__ import annotations

import functools
import platform as host_platform
import re
import shutil
import subprocess
from dataclasses import dataclass, replace

from yoloforge.serving.bundle.errors import BundleError


@dataclass(frozen=True)
class Platform:
    name: str  # as Docker names it (linux/amd64, linux/arm64), or jetson
    goarch: str
    machine: str  # what uname -m says on it
    cross_cc: str  # Debian's C cross compiler for it (cgo), used where this machine is another architecture
    cross_packages: str  # Debian's packages a cross build needs, for the message when they are missing
    wheel_platforms: tuple[str, ...]  # pip --platform tags of ONNX Runtime's wheel for it
    qemu: str  # qemu-user's emulator for it
    jetson: bool = False  # an NVIDIA Jetson (JetPack 6): the arm64 server on an L4T image with TensorRT

    @property
    def native(self) -> bool:
        """This machine runs its binaries itself."""
        return self.machine == _host_machine()

    @property
    def docker_platform(self) -> str:
        return f"linux/{self.goarch}"

    @property
    def slug(self) -> str:
        """What names its builds in the build cache: a Jetson runs the same arm64 binary and CPU library."""
        return self.docker_platform.replace("/", "-")

    def emulation_env(self) -> dict[str, str]:
        """Settings the server is run with under emulation: one engine copy (each takes tens of seconds to load
        there, and no speed is measured), and a Jetson bundle's model on ONNX Runtime's CPU provider (TensorRT
        needs the device's GPU)."""
        return {"YOLOFORGE_ENGINE_WORKERS": "1", **({"YOLOFORGE_ENGINE_PROVIDER": "cpu"} if self.jetson else {})}

    def cc(self) -> str | None:
        """The C compiler cgo builds with: None (Go's default) natively, else the cross compiler, which must be
        installed."""
        if self.native:
            return None
        if shutil.which(self.cross_cc) is None:
            raise BundleError(f"building for {self.name} needs Debian's C cross compiler {self.cross_cc} and "
                              f"libjpeg-turbo for {self.goarch}: dpkg --add-architecture {self.goarch} && "
                              f"apt-get update && apt-get install {self.cross_packages}")
        return self.cross_cc

    def command(self, binary: str) -> list[str]:
        """How this machine runs the platform's binary: itself, or under qemu-user (Debian's qemu-user; the
        binary's C library from Debian's multiarch libc6 for the platform). Emulation answers the same, slowly:
        speed is measured on the device (`yoloforge-server bench`)."""
        if self.native:
            return [binary]
        if _qemu_major(self.qemu) < QEMU_MIN:
            raise BundleError(f"running the {self.name} server on this {_host_machine()} machine needs qemu-user "
                              f"{QEMU_MIN} or newer (Debian 13, Ubuntu 24.04; 7.x crashes loading ONNX Runtime's "
                              f"library) and the platform's C and C++ libraries: dpkg --add-architecture "
                              f"{self.goarch} && apt-get update && apt-get install qemu-user libc6:{self.goarch} "
                              f"libstdc++6:{self.goarch}; or export with --no-check")
        # no -L sysroot: the binary's loader and libraries are found at their multiarch paths, as on the device
        # (Go's cgo runtime hangs under qemu-user with the cross toolchain's sysroot)
        return [self.qemu, binary]


_ARM64 = Platform("linux/arm64", "arm64", "aarch64", "aarch64-linux-gnu-gcc",
                  "gcc-aarch64-linux-gnu libturbojpeg0-dev:arm64",
                  ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64",
                   "manylinux2014_aarch64"), "qemu-aarch64")
PLATFORMS = {p.name: p for p in (
    Platform("linux/amd64", "amd64", "x86_64", "x86_64-linux-gnu-gcc",
             "gcc-x86-64-linux-gnu libturbojpeg0-dev:amd64",
             ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
             "qemu-x86_64"),
    _ARM64,
    replace(_ARM64, name="jetson", jetson=True),
)}


QEMU_MIN = 8


@functools.cache
def _qemu_major(qemu: str) -> int:
    """qemu-user's major version (0: not installed)."""
    if shutil.which(qemu) is None:
        return 0
    found = re.search(r"version (\d+)\.", subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout)
    return int(found.group(1)) if found else 0


def _host_machine() -> str:
    machine = host_platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def host() -> Platform:
    """This machine's platform (linux/amd64 where it is none of the known ones: the bundle's default)."""
    return next((p for p in PLATFORMS.values() if p.native and not p.jetson), PLATFORMS["linux/amd64"])


def platform_named(name: str | None) -> Platform:
    """The platform of that name (None: this machine's); a BundleError lists the known ones."""
    if name is None:
        return host()
    found = PLATFORMS.get(name.strip().lower())
    if found is None:
        raise BundleError(f"unknown platform {name!r}: choose one of {', '.join(PLATFORMS)}")
    return found
