"""The shapes backends hand to front ends, typed once so both sides are checked against them.

These are plain dictionaries at run time (the REST API serves them as JSON as they are),
typed as ``TypedDict`` so that mypy checks every producer and every reader. A backend
with more to say extends ``BackendInfo``; keys a front end does not know are shown as
they are, never required.
"""

from __future__ import annotations

from typing import Literal, NotRequired, Required, TypedDict

__all__ = [
    "BackendInfo",
    "BackendName",
    "BackendState",
    "BackendStateEntry",
    "BackendStatusInfo",
    "BackendsAnswer",
    "CapabilitiesDict",
    "CatalogRow",
    "EmbeddedModelInfo",
    "InstalledModel",
    "ModelDetails",
    "RegistryAnswer",
    "RegistryBackendEntry",
]


class CapabilitiesDict(TypedDict):
    """``Capabilities.to_dict()``: what a backend or one model can do."""

    downloads: bool
    streaming: bool
    json_schema: bool
    thinking: bool
    images: bool
    seed: bool


class EmbeddedModelInfo(TypedDict, total=False):
    """The bundled model as an in-process engine sees it."""

    name: Required[str]
    path: Required[str | None]
    converted: bool
    converted_path: str


class _BackendExtras(TypedDict, total=False):
    """The keys a backend adds to its info where it has them (written once for both shapes)."""

    # Servers (Ollama, OpenAI-compatible, Anthropic); URLs are shown redacted.
    base_url: str
    version: str | None
    server_version: str | None
    preset: str | None
    api_key_set: bool
    # In-process engines (Transformers, GGUF).
    loaded_models: list[str]
    max_loaded_models: int
    model_dirs: list[str]
    embedded_model: EmbeddedModelInfo
    device: str
    dtype: str
    llama_cpp_version: str | None
    n_ctx: int
    n_threads: int | None
    n_gpu_layers: int


class BackendInfo(_BackendExtras, total=False):
    """``get_backend_info()``: the base's keys always, a backend's own keys where it has them."""

    name: Required[str]
    type: Required[str]
    display_name: Required[str]
    capabilities: Required[CapabilitiesDict]
    downloads_models: Required[bool]


class ModelDetails(TypedDict, total=False):
    """What an engine knows of an installed model (Ollama's ``/api/tags`` ``details``)."""

    family: str
    parameter_size: str
    quantization_level: str
    format: str


class InstalledModel(TypedDict, total=False):
    """One entry of ``installed_model_details()``: at least the name."""

    name: Required[str]
    size: int | None
    path: str
    format: str
    digest: str
    modified_at: str
    details: ModelDetails


class CatalogRow(TypedDict):
    """A model as the registry lists it: its catalog entry merged with its installed state."""

    name: str
    description: str
    size: int | None
    size_human: str
    parameters: str | None
    tags: list[str]
    license: str | None
    installed: bool
    in_catalog: bool
    #: Only where the model can do other things than its backend.
    capabilities: NotRequired[CapabilitiesDict]


class BackendStatusInfo(_BackendExtras, total=False):
    """``BackendInfo`` plus the backend's state; only name and type when it could not be built."""

    name: Required[str]
    type: Required[str]
    enabled: Required[bool]
    available: Required[bool | None]
    reason: Required[str | None]
    display_name: str
    capabilities: CapabilitiesDict
    downloads_models: bool


class RegistryBackendEntry(TypedDict):
    """One backend in the registry's answer: its state, its catalog rows, what is installed."""

    info: BackendStatusInfo
    models: list[CatalogRow]
    installed: list[str]


class RegistryAnswer(TypedDict):
    """``ModelRegistry.available()``, served as-is by ``GET /localmind/api/models/available``."""

    status: Literal["ok"]
    backends: dict[str, RegistryBackendEntry]


class BackendName(TypedDict):
    """What is known of a backend whose ``get_backend_info()`` failed: its name and type."""

    name: str
    type: str


class BackendState(TypedDict):
    """``BackendStatus.to_dict()``: a configured backend, built or not, reachable or not."""

    name: str
    type: str
    enabled: bool
    available: bool | None
    reason: str | None


class BackendStateEntry(BackendState):
    """One backend of ``GET backends``: its state and what it says of itself."""

    info: BackendInfo | BackendName


class BackendsAnswer(TypedDict):
    """``GET /localmind/api/backends``: each backend's state and info, probed now."""

    status: Literal["ok"]
    backends: dict[str, BackendStateEntry]
