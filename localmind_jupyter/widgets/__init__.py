"""The model manager in ipywidgets: backend picker, model catalog, download progress.

Front end only: every widget calls the kernel's session (its loader, registry and
download manager) and holds no backend logic. Each widget works alone;
``ModelManager`` combines them.
"""

from __future__ import annotations

from .catalog import ModelCatalog
from .manager import ModelManager
from .picker import BackendPicker
from .progress import DownloadProgress

__all__ = ["BackendPicker", "DownloadProgress", "ModelCatalog", "ModelManager"]
