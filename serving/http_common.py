"""What yoloforge's HTTP servers in Python share (serving/openapi.yaml): the error body, the API-key check, and
reading a request's parameters and image. The preview and the stream service use it; it imports neither Ray nor
an engine."""

from __future__ import annotations

import hmac
import os
from typing import Any

import numpy as np
from fastapi.responses import JSONResponse


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def api_keys() -> list[bytes]:
    """The keys of YOLOFORGE_API_KEYS (comma-separated); none: every request is allowed."""
    return [k.strip().encode() for k in os.environ.get("YOLOFORGE_API_KEYS", "").split(",") if k.strip()]


def authorized(authorization: str, keys: list[bytes]) -> bool:
    """Whether an Authorization header carries one of the keys (always true without keys)."""
    if not keys:
        return True
    token = authorization[7:].strip().encode() if authorization.lower().startswith("bearer ") else b""
    # compare against every key, always, so timing says nothing about which key is close
    return any([hmac.compare_digest(token, key) for key in keys]) and bool(token)


IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


def query_parameters(query: Any) -> dict[str, Any] | JSONResponse:
    limits = {"conf": (float, 0.25, 0.0, 1.0), "iou": (float, 0.7, 0.0, 1.0), "max_det": (int, 300, 1, 1000),
              "top_k": (int, 5, 1, 100)}
    values: dict[str, Any] = {}
    for name, (kind, default, low, high) in limits.items():
        raw = query.get(name)
        try:
            value = default if raw is None else kind(raw)
        except ValueError:
            return error(400, "bad_parameter", f"{name}={raw!r} is not a{'n integer' if kind is int else ' number'}")
        if not low <= value <= high:
            return error(400, "bad_parameter", f"{name}={raw} is out of range [{low}, {high}]")
        values[name] = value
    return values


def decode_image(data: bytes, imgsz: int, task: str) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Bytes → (RGB uint8 pixels, the original's (height, width)), decoded for a model of this size and task
    (engines.processing.decode_for_model: a large JPEG reduced in its DCT, as the Go server does); None when they
    are not a JPEG, PNG or WebP image that decodes whole."""
    from yoloforge.engines.processing import UndecodableImage, decode_for_model

    if not data:
        return None
    try:
        return decode_for_model(data, imgsz, task)
    except UndecodableImage:  # the client's bad image, never a 500
        return None


def multipart_image(content_type: str, body: bytes) -> bytes | None:
    """The 'image' file field of a multipart/form-data body (parsed with the standard library's MIME parser)."""
    from email import policy
    from email.parser import BytesParser

    try:
        message = BytesParser(policy=policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body)
    except Exception:
        return None
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "image":
            payload = part.get_payload(decode=True)
            return payload if payload else None
    return None
