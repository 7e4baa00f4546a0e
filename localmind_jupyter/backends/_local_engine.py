"""``LocalEngineBackend``: what every in-process engine (Transformers, GGUF) does the same way.

An engine that runs models in the kernel's own process has the same chores whatever
library computes: name models (the bundled one, an absolute path, a ``model_dirs`` entry,
a Hub name), keep a few loaded (least recently used leaves first, one load per model
under concurrency), probe its heavy libraries without importing them, choose greedy
decoding or sampling from the options, refuse a prompt beyond the context window, and
describe itself without loading anything. A subclass says only what differs: how a path
or a Hub name becomes a source, how a source loads, how it generates.
"""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from ..errors import BackendUnavailable, ModelNotFound, OptionError
from . import _embedded, _names, _paths
from ._loaded import LoadedModels
from .base import BaseBackend

if TYPE_CHECKING:
    import re

    from ._request import GenerationRequest
    from .contracts import BackendInfo, EmbeddedModelInfo

__all__ = ["EngineSettings", "LocalEngineBackend", "Sampling", "check_context", "sampling"]


class EngineSettings(Protocol):
    """The settings every in-process engine has (each engine's dataclass declares them)."""

    @property
    def max_loaded_models(self) -> int: ...
    @property
    def model_dirs(self) -> list[str]: ...
    @property
    def max_new_tokens(self) -> int: ...
    @property
    def hub_cache_dir(self) -> str | None: ...


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


SourceT = TypeVar("SourceT", bound=_Keyed)
LoadedT = TypeVar("LoadedT")


@dataclass(frozen=True)
class Sampling:
    """How to sample when the options ask for it (``sampling()`` is None for greedy)."""

    temperature: float
    top_p: float
    #: Fixed by the caller, or a fresh random one: engines must not reuse the previous seed.
    seed: int


def sampling(request: GenerationRequest) -> Sampling | None:
    """Greedy (None) unless a temperature > 0, or top_p alone, asks for sampling.

    The same rule on every engine, so an option means the same whatever computes it.
    """
    temperature = request.temperature
    if temperature == 0 or (temperature is None and request.top_p is None):
        return None
    seed = request.seed if request.seed is not None else random.SystemRandom().getrandbits(31)
    return Sampling(temperature or 1.0, request.top_p or 1.0, seed)


def check_context(prompt_tokens: int, window: int | None, model: str) -> None:
    """Refuse a prompt that fills the context window, before it costs any compute."""
    if window is not None and prompt_tokens >= window:
        raise OptionError(
            f"Requested tokens ({prompt_tokens}) exceed context window of {window} of model "
            f"'{model}'; shorten the prompt (or the history sent with it)"
        )


class LocalEngineBackend(BaseBackend, Generic[SourceT, LoadedT]):
    """Base of the in-process engines: naming, the loaded-model cache, availability, info.

    Subclasses set the class variables below and write ``_absolute_source``,
    ``_listed_source``, ``_hub_source``, ``_models_in``, ``_load`` and ``deltas``.
    """

    #: Modules ``check_availability`` looks for (``find_spec``: nothing is imported).
    engine_modules: ClassVar[tuple[str, ...]] = ()
    #: What ``check_availability`` answers when one is missing.
    install_hint: ClassVar[str] = ""
    #: The shape of a model name (``validate_model_name``) and what to write instead.
    name_grammar: ClassVar[re.Pattern[str]] = _names.TRANSFORMERS_NAME
    name_hint: ClassVar[str] = _names.TRANSFORMERS_HINT
    #: What a path names, for the "relative path" answer (``a .gguf file``).
    path_what: ClassVar[str] = "a model file or folder"
    #: What a local model is, for the "not downloaded" answer (``file``, ``folder``).
    local_what: ClassVar[str] = "file"
    #: The names the unknown-model message offers, after the bundled model.
    name_forms: ClassVar[str] = "an absolute path or a file in model_dirs"

    # --- set-up -------------------------------------------------------------------------------
    @property
    def engine_settings(self) -> EngineSettings:
        """``self.settings`` typed as what the base reads; a subclass returns its own."""
        raise NotImplementedError

    def setup(self) -> None:
        self._models: LoadedModels[SourceT, LoadedT] = LoadedModels(
            self.engine_settings.max_loaded_models, release=self._release
        )

    def validate_model_name(self, name: str) -> str:
        return _names.check_local_name(name, self.type_name, self.name_grammar, self.name_hint)

    # --- availability -------------------------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        """``find_spec`` only: checking never pays for importing the engine's libraries."""
        for module in self.engine_modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return False, self.install_hint
        return True, None

    def _require_available(self) -> None:
        ok, reason = self.check_availability()
        if not ok:
            raise BackendUnavailable(reason or self.install_hint)

    # --- naming -------------------------------------------------------------------------------
    def _resolve(self, model: str) -> SourceT:
        """Classify a model name; raises ``ModelNotFound`` saying what to write instead.

        The bundled model, then an absolute path, then a ``model_dirs`` entry, then a Hub
        name; a relative path is never looked up in the working folder (see ``_paths``).
        """
        if not isinstance(model, str) or not model.strip():
            raise ModelNotFound("the model name is empty; try list_models() for what is available")
        name = model.strip()
        if name.lower() == _embedded.EMBEDDED_MODEL_NAME:
            return self._embedded_source()
        _paths.refuse_relative(name, self.path_what)
        path = _paths.absolute_path(name)
        if path is not None:
            return self._absolute_source(path, name)
        local = self._scan_model_dirs()
        hit = local.get(name) or local.get(f"{name}.gguf")
        if hit is not None:
            return self._listed_source(hit, name)
        hub = self._hub_source(name)
        if hub is not None:
            return hub
        raise ModelNotFound(self._unknown_message(name))

    def _embedded_source(self) -> SourceT:
        raise NotImplementedError

    def _absolute_source(self, path: Path, name: str) -> SourceT:
        """The source an absolute path names, or ``ModelNotFound`` saying what it is not."""
        raise NotImplementedError

    def _listed_source(self, path: Path, name: str) -> SourceT:
        """The source of a ``model_dirs`` entry."""
        raise NotImplementedError

    def _hub_source(self, name: str) -> SourceT | None:
        """The source of a Hub name, None when ``name`` is not one."""
        return None

    def _models_in(self, root: Path) -> list[Path]:
        """The models one ``model_dirs`` folder offers."""
        raise NotImplementedError

    def _scan_model_dirs(self) -> dict[str, Path]:
        """Names offered by the ``model_dirs`` folders; the first folder wins a name clash."""
        found: dict[str, Path] = {}
        for folder in self.engine_settings.model_dirs:
            for path in self._models_in(Path(folder).expanduser()):
                found.setdefault(path.name, path)
        return found

    def _hub_cache_dir(self) -> str | None:
        folder = self.engine_settings.hub_cache_dir
        return str(Path(folder).expanduser()) if folder else None

    def _unknown_message(self, name: str) -> str:
        try:
            available = self.list_models()
        except Exception:  # noqa: BLE001 - the message must not fail on top of the error
            available = []
        listing = ", ".join(available) if available else "none found"
        return (
            f"unknown model '{name}' for the {self.display_name} backend; use "
            f"'{_embedded.EMBEDDED_MODEL_NAME}', {self.name_forms} (available: {listing})"
        )

    def _not_downloaded_message(self, name: str) -> str:
        return (
            f"model '{name}' is not downloaded — download it with "
            f"`%localmind pull {self.name}:{name}` (a local {self.local_what} is named by its "
            "absolute path)"
        )

    # --- the loaded models --------------------------------------------------------------------
    def load_model(self, model: str) -> None:
        """Load into memory now so the first answer does not pay for it."""
        self._get_loaded(model)

    def unload_model(self, model: str) -> None:
        """Drop a model from memory (a running stream keeps its own reference until done)."""
        self._models.pop(self._resolve(model).key)

    def loaded_models(self) -> list[str]:
        """Keys of the models in memory, least recently used first."""
        return self._models.keys()

    def _get_loaded(self, model: str) -> LoadedT:
        return self._models.get(model, self._resolve, lambda source: self._load(source, model))

    def _load(self, source: SourceT, name: str) -> LoadedT:
        raise NotImplementedError

    def _release(self, loaded: LoadedT) -> None:
        """Called when a model leaves memory; dropping the references is enough by default."""

    def _max_new_tokens(self, request: GenerationRequest) -> int:
        return request.max_tokens or self.engine_settings.max_new_tokens

    # --- description --------------------------------------------------------------------------
    def get_backend_info(self) -> BackendInfo:
        """The keys every engine shows; never imports the engine just to describe itself."""
        info = super().get_backend_info()
        s = self.engine_settings
        source = _embedded.embedded_model_path()
        embedded: EmbeddedModelInfo = {
            "name": _embedded.EMBEDDED_MODEL_NAME,
            "path": str(source) if source else None,
        }
        info.update(
            {
                "loaded_models": self.loaded_models(),
                "max_loaded_models": s.max_loaded_models,
                "model_dirs": list(s.model_dirs),
                "embedded_model": embedded,
            }
        )
        return info
