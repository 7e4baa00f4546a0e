"""The model manager in ipywidgets: backend picker, model catalog, download progress.

The Compare panel asks several installed models one prompt side by side.

Front end only: every widget calls the kernel's session (its loader, registry and
download manager) and holds no backend logic. Each widget works alone;
``ModelManager`` combines them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import ModelCatalog
    from .compare_panel import ComparePanel
    from .manager import ModelManager
    from .picker import BackendPicker
    from .progress import DownloadProgress

__all__ = ["BackendPicker", "ComparePanel", "DownloadProgress", "ModelCatalog", "ModelManager"]

# Imported on first use, so the state modules (``catalog_state``) load without ipywidgets.
_WHERE = {
    "BackendPicker": ".picker",
    "DownloadProgress": ".progress",
    "ModelCatalog": ".catalog",
    "ComparePanel": ".compare_panel",
    "ModelManager": ".manager",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
