"""Where each image of a user turn goes among its text, for content-part APIs.

A front end that attaches an image where a ``{placeholder}`` stood writes ``[image N]``
there (N counts the turn's images from 1). OpenAI-style and Anthropic content parts put
each image at its marker; images no marker names go first, before the text, as Anthropic
advises. Ollama sends the text as it is and the images beside it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..core.images import ImageInput

#: The marker a front end leaves where an image stood.
MARKER = re.compile(r"\[image (\d+)\]")


def marker(number: int) -> str:
    """The text that stands for the turn's image ``number`` (1-based)."""
    return f"[image {number}]"


def user_parts(text: str, images: Sequence[ImageInput]) -> list[str | ImageInput]:
    """``text`` split at its ``[image N]`` markers, each replaced by its image, in order.

    A marker naming no image of the turn stays text; empty text pieces are dropped.
    """
    named: list[str | ImageInput] = []
    used: set[int] = set()
    start = 0
    for match in MARKER.finditer(text):
        number = int(match[1])
        if not 1 <= number <= len(images):
            continue
        named.append(text[start : match.start()])
        named.append(images[number - 1])
        used.add(number)
        start = match.end()
    named.append(text[start:])
    unnamed: list[str | ImageInput] = [im for i, im in enumerate(images, 1) if i not in used]
    return [part for part in [*unnamed, *named] if not isinstance(part, str) or part]
