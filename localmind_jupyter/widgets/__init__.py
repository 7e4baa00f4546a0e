"""The model manager in ipywidgets: backend picker, model catalog, download progress.

Front end only: every widget calls the kernel's session (its loader, registry and
download manager) and holds no backend logic. Each widget works alone;
``ModelManager`` combines them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import ModelCatalog
    from .manager import ModelManager
    from .picker import BackendPicker
    from .progress import DownloadProgress

__all__ = ["BackendPicker", "DownloadProgress", "ModelCatalog", "ModelManager"]

# Imported on first use, so the state modules (``catalog_state``) load without ipywidgets.
_WHERE = {
    "BackendPicker": ".picker",
    "DownloadProgress": ".progress",
    "ModelCatalog": ".catalog",
    "ModelManager": ".manager",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
