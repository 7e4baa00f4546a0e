"""The catalogs shipped with LocalMind (``catalogs/<name>.yaml``): models each backend offers.

At the backends' level, so a backend may list its own catalog (Anthropic falls back to
it) without reaching up into the core; the registry merges it with what is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    description: str = ""
    size: int | None = None
    parameters: str | None = None
    tags: tuple[str, ...] = ()
    license: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_ENTRY_KEYS = {"name", "description", "size", "parameters", "tags", "license"}


@cache
def load_catalog(catalog_name: str) -> tuple[CatalogEntry, ...]:
    """The catalog shipped under that name; a name without one has an empty catalog."""
    resource = files("localmind_jupyter.catalogs") / f"{catalog_name}.yaml"
    if not resource.is_file():
        return ()
    import yaml

    data = yaml.safe_load(resource.read_text(encoding="utf-8")) or {}
    return tuple(
        CatalogEntry(
            name=str(item["name"]),
            description=item.get("description", ""),
            size=item.get("size"),
            parameters=item.get("parameters"),
            tags=tuple(item.get("tags") or ()),
            license=item.get("license"),
            extra={k: v for k, v in item.items() if k not in _ENTRY_KEYS},
        )
        for item in data.get("models") or []
    )
