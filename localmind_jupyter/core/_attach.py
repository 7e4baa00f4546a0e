"""The images one prompt attaches: the ``attach`` callback of ``interpolate`` for image values.

A ``{fig}`` whose value is an image (``images.is_image_value``) is read once
(``images.to_image``, which raises ``ImageError`` for a bad one) and replaced in the text by
the marker ``[image N]``, N its 1-based place in the turn's images; the same image twice (by
identity or by content hash) is one image with one marker. Used by the magic (the notebook's
namespace) and by the batch runner (each row's columns).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .images import ImageInput

__all__ = ["Attachments", "labelled", "marker"]

SVG_HINT = "SVG is not supported: export it as PNG (e.g. fig.savefig('x.png'))"


def marker(number: int) -> str:
    """The text that stands where image ``number`` (1-based) was named."""
    return f"[image {number}]"


def labelled(image: ImageInput, name: str, value: object) -> ImageInput:
    """The image labelled ``name`` (a file as ``name (chart.png)``): a label never holds
    the folders of a path, which would be stored in the notebook's metadata."""
    label = f"{name} ({value.name})" if isinstance(value, Path) and value.name != name else name
    if image.label == label:
        return image
    return dataclasses.replace(image, label=label)


class Attachments:
    """Collects the images of one turn, in order, each once."""

    def __init__(self) -> None:
        self.images: list[ImageInput] = []
        self._by_id: dict[int, str] = {}  # id(value) -> marker; the values are kept alive
        self._values: list[object] = []
        self._by_hash: dict[str, str] = {}

    def attach(self, value: object, expr: str) -> str | None:
        """``interpolate``'s callback: the marker for an image value, None for anything else."""
        from .images import ImageError, is_image_value, to_image

        known = self._by_id.get(id(value))
        if known is not None:
            return known
        if not is_image_value(value):
            if type(value).__name__ == "SVG" and type(value).__module__.startswith("IPython"):
                raise ImageError(f"{expr}: {SVG_HINT}")  # a drawing, never useful as its repr
            return None
        found = self.add(labelled(to_image(value, expr), expr, value))
        self._by_id[id(value)] = found
        self._values.append(value)
        return found

    def add(self, image: ImageInput) -> str:
        """Add one read image (unless the same bytes are already attached); its marker."""
        known = self._by_hash.get(image.sha256)
        if known is not None:
            return known
        self.images.append(image)
        found = self._by_hash[image.sha256] = marker(len(self.images))
        return found
