"""What every yoloforge HTTP server in Python shares (serving/openapi.yaml): the error body and the API-key check.
The preview and the stream service both use it; it imports neither Ray nor an engine."""

from __future__ import annotations

import hmac
import os

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
