"""Decoding and preparing images with Pillow (imported with this module, on first image).

Preparing re-encodes every image: that is what strips EXIF (a phone photo's GPS position)
and any other metadata; a photo turned by its EXIF orientation is turned first.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

from .images import MAX_PIXELS, ImageError, ImageLimits, PreparedImage

if TYPE_CHECKING:
    from .images import ImageInput

#: More distinct colours than this (after downscaling) make an image a photo: JPEG.
PHOTO_COLOURS = 16_384
#: JPEG qualities tried in turn to fit under the byte cap, before shrinking.
_QUALITIES = (90, 80, 70, 60, 50)
#: The smallest long edge a shrink to fit the byte cap goes down to.
_MIN_EDGE = 32


def check_pixels(width: int, height: int, label: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels), more "
            f"than the {MAX_PIXELS // 10**6}-megapixel limit; downscale it first "
            "(e.g. img.thumbnail((4096, 4096)))"
        )


def open_checked(data: bytes, label: str) -> Image.Image:
    """Decode ``data`` (a truncated file fails here), refusing a huge one before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        check_pixels(image.width, image.height, label)  # only the header is read so far
        image.load()
    except Image.DecompressionBombError as exc:  # larger than Pillow's own cap
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(pixels[1]) / 1e6:.0f} megapixels" if pixels else "too many pixels"
        raise ImageError(
            f"{label} is {size}, more than the {MAX_PIXELS // 10**6}-megapixel limit; "
            "downscale it first"
        ) from None
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            f"{label} is not an image Pillow can read (expected PNG, JPEG, WebP or GIF)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label} is damaged or truncated and cannot be read ({exc})") from None
    return image


def png_bytes(image: Image.Image, label: str) -> bytes:
    """A PIL image as PNG (its pixels only): the source kept for images made in memory."""
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG", compress_level=1)  # fast: it is hashed, not sent
    except (OSError, ValueError) as exc:
        raise ImageError(f"{label} cannot be encoded as PNG ({exc})") from None
    return buffer.getvalue()


def _pixels(source: ImageInput) -> Image.Image:
    """The first frame, upright, as L, RGB or RGBA."""
    image = open_checked(source.data, source.label)
    image.seek(0)  # a GIF or an animated WebP: its first frame
    image = ImageOps.exif_transpose(image)
    alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if alpha:
        image = image.convert("RGBA")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    image.info = {}  # pixels only: no EXIF, ICC profile, XMP or text chunk is written
    return image


def _resized(image: Image.Image, edge: int) -> Image.Image:
    long_edge = max(image.size)
    if long_edge <= edge:
        return image
    scale = edge / long_edge
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _is_photo(source: ImageInput, image: Image.Image) -> bool:
    if source.format == "jpeg":
        return True
    return image.getcolors(PHOTO_COLOURS) is None


def _flattened(image: Image.Image) -> Image.Image:
    """RGBA on white, for JPEG (which has no alpha)."""
    if image.mode != "RGBA":
        return image
    white = Image.new("RGB", image.size, (255, 255, 255))
    white.paste(image, mask=image.getchannel("A"))
    return white


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "jpeg":
        _flattened(image).save(buffer, format="JPEG", quality=quality, optimize=True)
    else:
        image.save(buffer, format="PNG", optimize=image.width * image.height <= 1_000_000)
    return buffer.getvalue()


def prepare(source: ImageInput, limits: ImageLimits) -> PreparedImage:
    """Downscale to ``limits.max_edge``, pick PNG or JPEG, and fit under ``max_bytes``."""
    full = _pixels(source)
    image = _resized(full, limits.max_edge)
    jpeg_ok = "jpeg" in limits.formats or "png" not in limits.formats
    # Colours counted before downscaling, which blends a plot's few into many.
    fmt = "jpeg" if jpeg_ok and _is_photo(source, full) else "png"
    qualities: tuple[int, ...] = _QUALITIES if fmt == "jpeg" else (0,)
    while True:
        for quality in qualities:
            data = _encode(image, fmt, quality)
            if len(data) <= limits.max_bytes:
                return PreparedImage(
                    data,
                    f"image/{fmt}",
                    image.width,
                    image.height,
                    hashlib.sha256(data).hexdigest(),
                )
        edge = max(image.size)
        if edge <= _MIN_EDGE:
            raise ImageError(
                f"{source.label} cannot be made smaller than {limits.max_bytes} bytes "
                f"(image_max_bytes) even at {image.width}×{image.height}; raise the limit"
            )
        # Shrink by about what the overshoot asks (bytes grow with the area), at least 10 %.
        scale = min(0.9, math.sqrt(limits.max_bytes / len(data)) * 0.95)
        image = _resized(full, max(_MIN_EDGE, int(edge * scale)))
        qualities = _QUALITIES[1:3] if fmt == "jpeg" else (0,)
