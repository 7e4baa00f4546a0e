"""What each backend offers (its catalog) merged with what is installed there.

One call returns the shape of the seed's ``GET /api/models/available``, which the
REST API serves as-is and the widgets and ``%localmind models`` render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..backends._catalog import CatalogEntry, load_catalog
from ..backends.base import BaseBackend
from ..errors import LocalMindError
from .model_loader import BackendStatus, ModelLoader

if TYPE_CHECKING:
    from ..backends.contracts import (
        BackendInfo,
        BackendStatusInfo,
        CatalogRow,
        InstalledModel,
        ModelDetails,
        RegistryAnswer,
        RegistryBackendEntry,
    )

__all__ = ["CatalogEntry", "ModelRegistry", "human_size", "load_catalog", "merge_models"]


def human_size(size: int | None) -> str:
    """``1300000000`` -> ``1.3 GB`` (decimal units, as model libraries list sizes)."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _same(name: str) -> str:
    return name


def merge_models(
    catalog: tuple[CatalogEntry, ...],
    installed: list[InstalledModel],
    model_key: Callable[[str], str] = _same,
) -> list[CatalogRow]:
    """Catalog entries marked installed or not, plus installed models the catalog lacks.

    ``model_key``: the backend's ``model_key`` (when two names are one model). Installed
    models come first, then the catalog in its own order.
    """
    installed_by_key = {model_key(m["name"]): m for m in installed}
    rows: list[CatalogRow] = []
    seen: set[str] = set()
    for entry in catalog:
        key = model_key(entry.name)
        seen.add(key)
        found = installed_by_key.get(key)
        size = (found.get("size") if found else None) or entry.size
        rows.append(
            {
                "name": found["name"] if found else entry.name,
                "description": entry.description,
                "size": size,
                "size_human": human_size(size),
                "parameters": entry.parameters,
                "tags": list(entry.tags),
                "license": entry.license,
                "installed": found is not None,
                "in_catalog": True,
            }
        )
    for key, model in installed_by_key.items():
        if key in seen:
            continue
        details: ModelDetails = model.get("details") or {}
        size = model.get("size")
        rows.append(
            {
                "name": model["name"],
                "description": _describe(details),
                "size": size,
                "size_human": human_size(size),
                "parameters": details.get("parameter_size"),
                "tags": [],
                "license": None,
                "installed": True,
                "in_catalog": False,
            }
        )
    rows.sort(key=lambda row: not row["installed"])  # stable: keeps catalog order
    return rows


def _describe(details: ModelDetails) -> str:
    parts = [
        details.get("family"),
        details.get("parameter_size"),
        details.get("quantization_level"),
    ]
    text = " ".join(str(p) for p in parts if p)
    return f"installed locally ({text})" if text else "installed locally"


def _catalog_for(backend: BaseBackend) -> tuple[CatalogEntry, ...]:
    """The catalog the backend names (``catalog_name``): none for one at a self-served server."""
    name = backend.catalog_name
    return load_catalog(name) if name else ()


def _with_model_capabilities(rows: list[CatalogRow], backend: BaseBackend) -> list[CatalogRow]:
    """Rows whose model can do other things than its backend say so (``capabilities``)."""
    for row in rows:
        own = backend.model_capabilities(row["name"])
        if own != backend.capabilities:
            row["capabilities"] = own.to_dict()
    return rows


class ModelRegistry:
    """Catalog plus installed state for every configured backend."""

    def __init__(self, loader: ModelLoader | None = None) -> None:
        self.loader = loader if loader is not None else ModelLoader()

    def models(self, backend_name: str) -> list[CatalogRow]:
        backend = self.loader.get(backend_name)
        rows = merge_models(
            _catalog_for(backend), backend.installed_model_details(), backend.model_key
        )
        return _with_model_capabilities(rows, backend)

    def available(self, probe: bool = True) -> RegistryAnswer:
        """``{"status": "ok", "backends": {name: {"info", "models", "installed"}}}``."""
        statuses = self.loader.probe() if probe else self.loader.statuses
        return {
            "status": "ok",
            "backends": {name: self._backend_entry(status) for name, status in statuses.items()},
        }

    def _backend_entry(self, status: BackendStatus) -> RegistryBackendEntry:
        installed: list[InstalledModel] = []
        own: BackendInfo | None = None
        backend = status.backend
        if backend is not None:
            own = backend.get_backend_info()
            if status.available is not False:
                try:
                    installed = backend.installed_model_details()
                except LocalMindError as exc:
                    status.available, status.reason = False, str(exc)
        # In order (name, type, the backend's info, then its state), as served.
        name, kind = status.name, status.type
        enabled, available, reason = status.enabled, status.available, status.reason
        info: BackendStatusInfo
        if own is None:
            info = {
                "name": name,
                "type": kind,
                "enabled": enabled,
                "available": available,
                "reason": reason,
            }
        else:
            info = {
                "name": name,
                "type": kind,
                **own,
                "enabled": enabled,
                "available": available,
                "reason": reason,
            }
        catalog = _catalog_for(backend) if backend is not None else load_catalog(status.type)
        models = merge_models(catalog, installed, backend.model_key if backend else _same)
        if backend is not None:
            models = _with_model_capabilities(models, backend)
        return {
            "info": info,
            "models": models,
            "installed": [m["name"] for m in installed],
        }
