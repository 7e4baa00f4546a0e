"""LocalMind for Jupyter: local and remote language models behind one interface.

Importing the package is cheap on purpose (``%load_ext`` must stay fast): the
public names below are resolved on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ModelLoader": "localmind_jupyter.core.model_loader",
    "ModelRegistry": "localmind_jupyter.core.model_registry",
    "load_config": "localmind_jupyter.config",
    "BaseBackend": "localmind_jupyter.backends.base",
    "ModelResponse": "localmind_jupyter.backends.base",
    "DownloadProgress": "localmind_jupyter.backends.base",
    "LocalMindError": "localmind_jupyter.errors",
    "BackendUnavailable": "localmind_jupyter.errors",
    "ModelNotFound": "localmind_jupyter.errors",
    "GenerationError": "localmind_jupyter.errors",
    "DownloadError": "localmind_jupyter.errors",
    "ConfigError": "localmind_jupyter.errors",
    "OptionError": "localmind_jupyter.errors",
    "ModelManager": "localmind_jupyter.widgets",
    "batch": "localmind_jupyter.python_api",
    "compare": "localmind_jupyter.python_api",
    "BatchResult": "localmind_jupyter.core._batch_result",
    "BatchProgress": "localmind_jupyter.core._batch_result",
    "log_entries": "localmind_jupyter.core.answer_log",
}

__all__ = [  # noqa: RUF022 - grouped as in _LAZY
    "__version__",
    "ModelLoader",
    "ModelRegistry",
    "load_config",
    "BaseBackend",
    "ModelResponse",
    "DownloadProgress",
    "LocalMindError",
    "BackendUnavailable",
    "ModelNotFound",
    "GenerationError",
    "DownloadError",
    "ConfigError",
    "OptionError",
    "ModelManager",
    "batch",
    "compare",
    "BatchResult",
    "BatchProgress",
    "log_entries",
]

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .backends.base import BaseBackend, DownloadProgress, ModelResponse
    from .config import load_config
    from .core._batch_result import BatchProgress, BatchResult
    from .core.answer_log import log_entries
    from .core.model_loader import ModelLoader
    from .core.model_registry import ModelRegistry
    from .errors import (
        BackendUnavailable,
        ConfigError,
        DownloadError,
        GenerationError,
        LocalMindError,
        ModelNotFound,
        OptionError,
    )
    from .python_api import batch, compare
    from .widgets import ModelManager


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext localmind_jupyter`` (or ``c.InteractiveShellApp.extensions``)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'localmind_jupyter' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where a Jupyter server finds the REST API extension (imported only by the server)."""
    from .server.app import LocalMindExtension

    return [{"module": "localmind_jupyter.server.app", "app": LocalMindExtension}]
