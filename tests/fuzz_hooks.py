"""Schemathesis hooks for the contract fuzzer (loaded through SCHEMATHESIS_HOOKS by tests/contract.py: fuzz).

The spec can say that a body or the multipart field `image` is a JPEG, PNG or WebP, but not what such bytes look
like: without these strategies the fuzzer sends random bytes labelled image/jpeg, and a server that refuses them
as bad_image would fail "schema-valid request rejected". Here every image media type generates real images of
random sizes and contents, so acceptance is tested on what the schema means."""

from __future__ import annotations

import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


def images(pil_format: str) -> st.SearchStrategy[bytes]:
    @st.composite
    def encoded(draw: st.DrawFn) -> bytes:
        width, height = draw(st.integers(1, 320)), draw(st.integers(1, 320))
        gray = draw(st.booleans())
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        pixels = rng.integers(0, 256, (height, width) if gray else (height, width, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=pil_format)
        return buf.getvalue()

    return encoded()


for media_type, pil_format in FORMATS.items():
    schemathesis.openapi.media_type(media_type, images(pil_format))
