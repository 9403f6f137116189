"""Local TCP ports for the servers yoloforge starts on this machine (the preview, a bundle's binary)."""

from __future__ import annotations

import socket


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A loopback port nothing listens on (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
