"""One image's checks: can it be decoded, is it big enough, is it complete (a truncated JPEG)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

# Ultralytics' IMG_FORMATS (ultralytics.data.utils); a test keeps the two in step.
IMG_SUFFIXES = frozenset(
    f".{s}" for s in ("avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp")
)


MIN_IMAGE_PX = 10


IMAGE_CODES = {"unsupported_image", "corrupt_image", "image_too_small", "image_too_large", "jpeg_truncated",
                "label_stem_clash"}


@dataclass
class ImageVerdict:
    size: tuple[int, int] = (0, 0)
    digest: str = ""
    code: str | None = None
    message: str = ""


def inspect_image(path: Path) -> ImageVerdict:
    """Decode one image fully; never raises."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return ImageVerdict(code="corrupt_image", message=f"cannot be read: {err.strerror or err}")
    verdict = ImageVerdict(digest=hashlib.blake2b(data, digest_size=16).hexdigest())
    if not data:
        verdict.code, verdict.message = "corrupt_image", "empty file (0 bytes)"
        return verdict
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            verdict.size = im.size
    except Image.DecompressionBombError as err:
        verdict.code, verdict.message = "image_too_large", f"too large to decode safely: {err}"
        return verdict
    except Exception as err:  # PIL raises many types for broken files
        verdict.code, verdict.message = "corrupt_image", f"cannot be decoded: {err}"
        return verdict
    w, h = verdict.size
    if w < MIN_IMAGE_PX or h < MIN_IMAGE_PX:
        verdict.code, verdict.message = "image_too_small", f"{w}x{h} pixels, below {MIN_IMAGE_PX}x{MIN_IMAGE_PX}"
    elif path.suffix.lower() in (".jpg", ".jpeg") and data[-2:] != b"\xff\xd9":
        verdict.code, verdict.message = "jpeg_truncated", "JPEG lacks its end marker (truncated write?)"
    return verdict

