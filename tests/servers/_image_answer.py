"""What the loopback servers' vision models answer: computed from the image's pixels.

``describe`` gives ``I see a 640×480 image; its most common colour is blue (#1f77b4).``,
read with pillow from the bytes the server decoded, so an answer proves which image
arrived and a teaching notebook stays deterministic. A figure's white background is
skipped when other colours exist (``the background is white and its most common other
colour is blue (#1f77b4)``); several images are described one by one (``I see 2 images.
Image 1 is 640×480; ...``). Colours are named after the nearest of ``PALETTE``
(matplotlib's default cycle first).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

__all__ = ["PALETTE", "describe"]

#: Named colours an answer may use: matplotlib's default cycle first, then plain ones.
PALETTE: dict[str, tuple[int, int, int]] = {
    "blue": (0x1F, 0x77, 0xB4),
    "orange": (0xFF, 0x7F, 0x0E),
    "green": (0x2C, 0xA0, 0x2C),
    "red": (0xD6, 0x27, 0x28),
    "purple": (0x94, 0x67, 0xBD),
    "brown": (0x8C, 0x56, 0x4B),
    "pink": (0xE3, 0x77, 0xC2),
    "grey": (0x7F, 0x7F, 0x7F),
    "olive": (0xBC, 0xBD, 0x22),
    "cyan": (0x17, 0xBE, 0xCF),
    "white": (0xFF, 0xFF, 0xFF),
    "black": (0x00, 0x00, 0x00),
    "pure red": (0xFF, 0x00, 0x00),
    "pure green": (0x00, 0xFF, 0x00),
    "pure blue": (0x00, 0x00, 0xFF),
    "yellow": (0xFF, 0xFF, 0x00),
}


def _nearest(rgb: tuple[int, int, int]) -> str:
    def distance(name: str) -> int:
        return sum((a - b) ** 2 for a, b in zip(PALETTE[name], rgb, strict=True))

    return min(PALETTE, key=distance)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _colours(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and the colours by how often they occur (most first)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(0)
        width, height = opened.size
        rgba = opened.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    if rgb.width * rgb.height > 256 * 256:  # NEAREST keeps exact colours, unlike LANCZOS
        scale = max(rgb.width, rgb.height) / 256
        rgb = rgb.resize(
            (max(1, round(rgb.width / scale)), max(1, round(rgb.height / scale))),
            Image.Resampling.NEAREST,
        )
    counts = rgb.getcolors(maxcolors=rgb.width * rgb.height) or []
    counts.sort(key=lambda item: (-item[0], item[1]))
    return width, height, [colour for _count, colour in counts]  # type: ignore[misc]


def _near_white(rgb: tuple[int, int, int]) -> bool:
    return min(rgb) >= 245


def _one(data: bytes) -> tuple[str, str]:
    """(``640×480``, ``its most common colour is blue (#1f77b4)``) for one image."""
    try:
        width, height, colours = _colours(data)
    except Exception:  # noqa: BLE001 - the server already accepted it; say what it is
        return "unreadable", "I cannot tell its colours"
    size = f"{width}×{height}"
    if not colours:
        return size, "it has no pixels"
    top = colours[0]
    others = [c for c in colours if not _near_white(c)]
    if _near_white(top) and others:
        other = others[0]
        return size, (
            f"the background is white and its most common other colour is "
            f"{_nearest(other)} ({_hex(other)})"
        )
    return size, f"its most common colour is {_nearest(top)} ({_hex(top)})"


def describe(images: Sequence[bytes]) -> str:
    """What the fake vision model answers about the images of the last user turn."""
    if len(images) == 1:
        size, colour = _one(images[0])
        return f"I see a {size} image; {colour}."
    sentences = [f"I see {len(images)} images."]
    for index, data in enumerate(images, 1):
        size, colour = _one(data)
        sentences.append(f"Image {index} is {size}; {colour}.")
    return " ".join(sentences)
