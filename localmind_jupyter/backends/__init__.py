"""Backend discovery through the ``localmind.backends`` entry-point group.

A third-party package adds a backend by declaring, in its own pyproject::

    [project.entry-points."localmind.backends"]
    mybackend = "my_package.module:MyBackend"

Classes are imported only when a backend of that type is built, so listing the
types costs no heavy import.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from ..errors import ConfigError
from .base import BaseBackend, DownloadProgress, ModelResponse, ResponseStream

ENTRY_POINT_GROUP = "localmind.backends"

__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseBackend",
    "DownloadProgress",
    "ModelResponse",
    "ResponseStream",
    "backend_class",
    "backend_types",
]


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_types() -> list[str]:
    """Names of every installed backend type, ours and plugins'."""
    return sorted(_entry_points())


def backend_class(type_name: str) -> type[BaseBackend]:
    """Import and return the class registered for ``type_name``."""
    entry = _entry_points().get(type_name)
    if entry is None:
        raise ConfigError(
            f"unknown backend type {type_name!r}; installed types: {', '.join(backend_types())}"
        )
    cls = entry.load()
    if not (isinstance(cls, type) and issubclass(cls, BaseBackend)):
        raise ConfigError(
            f"the entry point {entry.value!r} for backend type {type_name!r} "
            "is not a BaseBackend subclass"
        )
    return cls


def refresh_backend_types() -> None:
    """Forget the cached entry points (after installing a plugin in a running kernel)."""
    _entry_points.cache_clear()
