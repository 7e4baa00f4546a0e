"""Showing what a prompt sent: a small thumbnail of each attached image above the answer.

The thumbnail is a PNG we make (at most ``THUMBNAIL_EDGE`` px on its long side), inline as a
``data:`` URL with its width and height, the image's label as its alt text; the HTML goes
through ``safe_display.clean_html`` like everything else shown, so a label (a file name, a
variable) can inject nothing. A terminal gets one line per image. The output's metadata
records each image's label, size, format and hash, never its bytes.
"""

from __future__ import annotations

import base64
import io
import sys
from typing import TYPE_CHECKING, Any, TextIO

from .. import safe_display

if TYPE_CHECKING:
    from ..core.images import ImageInput

__all__ = ["THUMBNAIL_EDGE", "image_line", "images_bundle", "images_metadata", "show_images"]

#: The long edge of a thumbnail, in CSS pixels.
THUMBNAIL_EDGE = 160


def image_line(number: int, image: ImageInput) -> str:
    """``[image 1: fig, 640×480 PNG, sha256 1a2b3c4d]``: what a terminal shows."""
    return (
        f"[image {number}: {image.label}, {image.width}×{image.height} "
        f"{image.format.upper()}, sha256 {image.sha256[:8]}]"
    )


def images_metadata(images: list[ImageInput]) -> list[dict[str, Any]]:
    """Each image's label, size, format, byte count and sha256: never the bytes."""
    return [image.metadata() for image in images]


#: Thumbnails made, by (sha256, edge): a rerun of the cell does not draw them again. Only
#: the small PNGs are kept, never the images themselves.
_THUMBNAILS: dict[tuple[str, int], tuple[str, int, int]] = {}
_KEEP = 64


def _thumbnail(image: ImageInput, edge: int) -> tuple[str, int, int]:
    """(base64 PNG, width, height) of ``image`` shrunk to fit ``edge``."""
    key = (image.sha256, edge)
    made = _THUMBNAILS.get(key)
    if made is None:
        made = _THUMBNAILS[key] = _draw(image.data, edge)
        while len(_THUMBNAILS) > _KEEP:
            del _THUMBNAILS[next(iter(_THUMBNAILS))]
    return made


def _draw(data: bytes, edge: int) -> tuple[str, int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as source:
        source.seek(0)  # an animated GIF: its first frame
        source.draft("RGB", (edge, edge))  # a large JPEG: decoded at a fraction of its size
        picture = source.convert("RGBA" if "A" in source.getbands() else "RGB")
    picture.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), picture.width, picture.height


def _figure(number: int, image: ImageInput) -> str:
    encoded, width, height = _thumbnail(image, THUMBNAIL_EDGE)
    label = safe_display.escape(image.label)
    title = safe_display.escape(image_line(number, image))
    return (
        f'<img src="data:image/png;base64,{encoded}" width="{width}" height="{height}" '
        f'alt="{label}" title="{title}">'
    )


def images_html(images: list[ImageInput]) -> str:
    """The thumbnails in a row, then one small line naming what was sent."""
    pictures = " ".join(_figure(n, image) for n, image in enumerate(images, 1))
    names = " · ".join(
        f"[image {n}] {image.label} ({image.width}×{image.height} {image.format.upper()})"
        for n, image in enumerate(images, 1)
    )
    markup = f"<p>{pictures}</p><p><sub>sent: {safe_display.escape(names)}</sub></p>"
    return safe_display.clean_html(markup)


def images_bundle(images: list[ImageInput]) -> dict[str, str]:
    """The display of the thumbnails: HTML for a notebook, the lines as its plain text."""
    lines = "\n".join(image_line(n, image) for n, image in enumerate(images, 1))
    return {"text/plain": lines, "text/html": images_html(images)}


def show_images(images: list[ImageInput], *, notebook: bool, out: TextIO | None = None) -> None:
    """Show the images a prompt sends, above its answer (nothing when there are none)."""
    if not images:
        return
    bundle = images_bundle(images)
    if notebook:
        from IPython.display import display

        display(bundle, raw=True, metadata={"localmind": {"images": images_metadata(images)}})
        return
    stream = out or sys.stdout
    stream.write(safe_display.terminal_text(bundle["text/plain"]) + "\n")
    stream.flush()
