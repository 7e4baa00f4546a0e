"""The image settings every backend takes (``image_max_edge``, ``image_max_bytes``), checked
and turned into the limits images are prepared to; and the vision model a refusal names."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.images import ImageLimits
from ..errors import ConfigError

#: The smallest values the image settings take (smaller would send unreadable images).
_IMAGE_MINIMUM = {"image_max_edge": 16, "image_max_bytes": 1024}


def check_image_settings(settings: Any, backend_name: str) -> None:
    """Refuse an edge or a byte cap too small to carry a readable image, naming the key."""
    for name, least in _IMAGE_MINIMUM.items():
        value = getattr(settings, name, None)  # a plugin schema of its own may lack them
        if value is not None and value < least:
            key = f"backends.{backend_name}.settings.{name}"
            raise ConfigError(f"{key}: must be at least {least} (got {value})", key=key)


def image_limits(settings: Any, default: ImageLimits) -> ImageLimits:
    """The backend's default limits with what its settings override."""
    edge = getattr(settings, "image_max_edge", None)
    size = getattr(settings, "image_max_bytes", None)
    if edge is None and size is None:
        return default
    return dataclasses.replace(
        default,
        max_edge=default.max_edge if edge is None else edge,
        max_bytes=default.max_bytes if size is None else size,
    )


def vision_example(catalog_name: str | None) -> str:
    """A model of the backend's catalog tagged ``vision``, to name in a refusal ("" if none)."""
    from ._catalog import load_catalog

    entries = load_catalog(catalog_name) if catalog_name else ()
    return next((e.name for e in entries if "vision" in e.tags), "")
