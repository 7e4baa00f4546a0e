"""Backend discovery through the ``localmind.backends`` entry-point group.

A third-party package adds a backend by declaring, in its own pyproject::

    [project.entry-points."localmind.backends"]
    mybackend = "my_package.module:MyBackend"

Classes are imported only when a backend of that type is built, so listing the
types costs no heavy import.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ..core.images import ImageInput, ImageLimits
from ..errors import ConfigError
from ._image_parts import user_parts
from .base import (
    BackendSettings,
    BaseBackend,
    Delta,
    DownloadProgress,
    ModelResponse,
    ProgressCallback,
    ResponseStream,
    Started,
    Thinking,
    Usage,
)
from .capabilities import Capabilities, ModelNameError
from .contracts import BackendInfo, InstalledModel, ModelDetails

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ._request import GenerationRequest

#: The plugin API: what a backend package imports. Everything else in ``backends`` is
#: internal (modules and names starting with ``_``) or a built-in backend's own module.
__all__ = [
    "BackendInfo",
    "BackendSettings",
    "BaseBackend",
    "Capabilities",
    "Delta",
    "DownloadProgress",
    "GenerationRequest",
    "ImageInput",
    "ImageLimits",
    "InstalledModel",
    "ModelDetails",
    "ModelNameError",
    "ModelResponse",
    "ProgressCallback",
    "ResponseStream",
    "Started",
    "Thinking",
    "Usage",
    "backend_class",
    "backend_types",
    "refresh_backend_types",
    "user_parts",
]

_ENTRY_POINT_GROUP = "localmind.backends"


def __getattr__(name: str) -> Any:
    """``GenerationRequest`` (pydantic) is imported on first use, not with this package."""
    if name == "GenerationRequest":
        from ._request import GenerationRequest

        return GenerationRequest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Our own backends, registered as entry points too (a test keeps the two in step). Looking
#: them up here skips scanning every installed distribution, a third of start-up time.
_BUILTIN_BACKENDS: dict[str, str] = {
    "anthropic": "localmind_jupyter.backends.anthropic:AnthropicBackend",
    "gguf": "localmind_jupyter.backends.gguf:GGUFBackend",
    "ollama": "localmind_jupyter.backends.ollama:OllamaBackend",
    "openai": "localmind_jupyter.backends.openai:OpenAIBackend",
    "tensorrt": "localmind_jupyter.backends.openai:TensorRTBackend",
    "transformers": "localmind_jupyter.backends.transformers:TransformersBackend",
    "vllm": "localmind_jupyter.backends.openai:VLLMBackend",
}


@cache
def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=_ENTRY_POINT_GROUP)}


def backend_types() -> list[str]:
    """Names of every installed backend type, ours and plugins'."""
    return sorted(set(_BUILTIN_BACKENDS) | set(_entry_points()))


def backend_class(type_name: str) -> type[BaseBackend]:
    """Import and return the class registered for ``type_name``."""
    target = _BUILTIN_BACKENDS.get(type_name)
    if target is None:
        entry = _entry_points().get(type_name)
        if entry is None:
            raise ConfigError(
                f"unknown backend type {type_name!r}; installed types: "
                f"{', '.join(backend_types())} (a plugin package may add more)"
            )
        target = entry.value
        cls = entry.load()
    else:
        module, _, attr = target.partition(":")
        cls = getattr(import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, BaseBackend)):
        raise ConfigError(
            f"the entry point {target!r} for backend type {type_name!r} "
            "is not a BaseBackend subclass"
        )
    return cls


def refresh_backend_types() -> None:
    """Forget the cached entry points (after installing a plugin in a running kernel)."""
    _entry_points.cache_clear()
