"""Images for the backends' image tests: a drawing (few colours: sent as PNG) and a photo
(many colours: sent as JPEG), made with pillow, and reading back what a server received."""

from __future__ import annotations

import base64
import io
import random

from PIL import Image

BLUE = (0x1F, 0x77, 0xB4)
ORANGE = (0xFF, 0x7F, 0x0E)


def drawing(width: int, height: int, colour: tuple[int, int, int] = BLUE) -> Image.Image:
    """A white canvas with one coloured block, as a chart looks."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste(colour, (width // 4, height // 4, width * 3 // 4, height * 3 // 4))
    return image


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Colour noise over a gradient: thousands of colours, as a photograph has."""
    noise = Image.frombytes(
        "RGB", (width, height), random.Random(seed).randbytes(width * height * 3)
    )
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    return Image.blend(noise, gradient, 0.6)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def from_base64(text: str) -> Image.Image:
    return opened(base64.b64decode(text, validate=True))


def from_data_url(url: str) -> tuple[str, Image.Image]:
    """(MIME type, image) of a ``data:image/...;base64,...`` URL."""
    head, _, payload = url.partition(",")
    assert head.startswith("data:") and head.endswith(";base64"), head
    return head[5:-7], from_base64(payload)
