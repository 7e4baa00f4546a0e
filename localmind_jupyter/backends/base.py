"""The contract every backend follows, so front ends never care which one answers.

A backend is built from the ``settings`` mapping of its entry in ``config.yaml``
and registered under the entry-point group ``localmind.backends``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ..errors import ConfigError, GenerationError, OptionError
from ..secrets import is_secret_key, register_settings
from .capabilities import Capabilities, check_generic_name, refuse_unsupported

#: Options every backend understands, mapped to each backend's own names.
COMMON_OPTIONS: frozenset[str] = frozenset(
    {"system", "messages", "temperature", "max_tokens", "top_p", "seed", "stop"}
)

ProgressCallback = Callable[["DownloadProgress"], None]

#: The largest seed: every engine takes 0..2**31-1 as it is (llama.cpp's seed is a uint32
#: whose 0xFFFFFFFF means "random", Ollama's a Go int, torch's an int64, OpenAI's an integer).
MAX_SEED = 2**31 - 1


@dataclass
class ModelResponse:
    """One finished answer, with the same statistics whatever backend produced it."""

    text: str
    model: str
    backend: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    time_to_first_token: float | None = None
    duration: float | None = None
    tokens_per_second: float | None = None
    #: True when the server sent no token count and the streamed pieces were counted instead.
    tokens_approximate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DownloadProgress:
    """Overall progress of one download: bytes across all layers or files, not per part."""

    model: str
    backend: str
    #: What is happening, for people (``pulling 8eeb52dfb3bb``, ``converting …``).
    status: str
    completed: int = 0
    total: int | None = None
    #: The step, for front ends: they redraw when it changes, not at every new ``status``
    #: text (one phase may report many layers). Empty: the status is the phase.
    phase: str = ""

    def __post_init__(self) -> None:
        if not self.phase:
            self.phase = self.status

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.completed / self.total)


@dataclass
class GenerationOptions:
    """The backend-neutral generation options, validated once for every backend."""

    system: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def chat_messages(self, prompt: str) -> list[dict[str, str]]:
        """System prompt, earlier turns, then the new user turn."""
        messages: list[dict[str, str]] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.extend(self.messages)
        messages.append({"role": "user", "content": prompt})
        return messages


def parse_options(
    kwargs: Mapping[str, Any], extra_allowed: frozenset[str] = frozenset()
) -> GenerationOptions:
    """Validate keyword options so a typo or a bad value fails loudly, not silently."""
    unknown = set(kwargs) - COMMON_OPTIONS - extra_allowed
    if unknown:
        supported = ", ".join(sorted(COMMON_OPTIONS | extra_allowed))
        raise OptionError(
            f"unknown option(s) {', '.join(sorted(unknown))}; supported options are: {supported}"
        )
    opts = GenerationOptions(extra={k: v for k, v in kwargs.items() if k in extra_allowed})

    system = kwargs.get("system")
    if system is not None and not isinstance(system, str):
        raise OptionError("system must be a string")
    opts.system = system or None

    messages = kwargs.get("messages") or []
    if not isinstance(messages, list):
        raise OptionError("messages must be a list of {'role': ..., 'content': ...} dicts")
    for turn in messages:
        if (
            not isinstance(turn, Mapping)
            or turn.get("role") not in {"system", "user", "assistant"}
            or not isinstance(turn.get("content"), str)
        ):
            raise OptionError(
                "each entry of messages must be a dict with role 'system', 'user' or 'assistant' "
                f"and string content; got {turn!r:.80}"
            )
    opts.messages = [{"role": t["role"], "content": t["content"]} for t in messages]

    temperature = kwargs.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise OptionError(f"temperature must be a number, got {temperature!r}")
        if not 0 <= temperature <= 2:
            raise OptionError(f"temperature must be between 0 and 2, got {temperature}")
        opts.temperature = float(temperature)

    max_tokens = kwargs.get("max_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise OptionError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        opts.max_tokens = max_tokens

    top_p = kwargs.get("top_p")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise OptionError(f"top_p must be a number in (0, 1], got {top_p!r}")
        opts.top_p = float(top_p)

    seed = kwargs.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise OptionError(
                f"seed must be an integer from 0 to {MAX_SEED} (2**31 - 1), got {_shown(seed)}; "
                "pick a seed in that range, e.g. 42"
            )
        opts.seed = seed

    stop = kwargs.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, (list, tuple)) or not all(isinstance(s, str) and s for s in stops):
            raise OptionError("stop must be a non-empty string or a list of non-empty strings")
        opts.stop = list(stops)
    return opts


def _shown(value: Any) -> str:
    """A short repr: an integer too long to print (str() refuses > 4300 digits) by its size."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return f"{value!r:.40}"


class ResponseStream:
    """Text pieces as they arrive; ``.response`` once exhausted; ``.close()`` stops the source.

    ``__iter__`` returns the backend's generator itself, so a ``for`` loop pays for no
    extra layer per piece. Leaving the loop early does not stop a stream still held (it
    can be read on); ``close()``, ``with`` or dropping the stream does. The generator
    reaches this stream only through a weak reference (see ``StreamTimer``): no reference
    cycle, so dropping the stream drops the generator at once and its ``finally`` releases
    the source (HTTP connection, worker thread) without waiting for the cyclic collector.
    """

    def __init__(self, model: str, backend: str) -> None:
        self.model = model
        self.backend = backend
        self.response: ModelResponse | None = None
        self.pieces: list[str] = []
        self._generator: Generator[str, None, None] | None = None
        self._cancel: threading.Event | None = None

    def bind(
        self, generator: Generator[str, None, None], cancel: threading.Event | None = None
    ) -> ResponseStream:
        """``cancel``: an event the source checks while it computes (see ``cancel()``)."""
        self._generator = generator
        self._cancel = cancel
        return self

    @property
    def text(self) -> str:
        """What has arrived so far (the partial answer if stopped or failed)."""
        return "".join(self.pieces)

    def __iter__(self) -> Iterator[str]:
        assert self._generator is not None, "stream was never bound to a generator"
        return self._generator

    def __next__(self) -> str:
        assert self._generator is not None, "stream was never bound to a generator"
        return next(self._generator)

    def close(self) -> None:
        """Stop generating at the source; ``response`` then holds the partial answer."""
        if self._generator is not None:
            self._generator.close()

    def cancel(self) -> None:
        """Ask the source to stop now, from any thread; ``close()`` works on the reading one only.

        An in-process engine stops within one step of its compute, even inside a long
        prompt pass; the reading thread then sees the stream end as "cancelled".
        """
        if self._cancel is not None:
            self._cancel.set()

    def __enter__(self) -> ResponseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamTimer:
    """Measures time to first token and duration the same way for every backend.

    Backend generators hold the timer, not the stream: it keeps the stream's pieces
    and only a weak reference to the stream itself.
    """

    def __init__(self, stream: ResponseStream | None = None) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self._stream = weakref.ref(stream) if stream is not None else None
        self.pieces: list[str] = stream.pieces if stream is not None else []

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def mark_piece(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def cancelled(self) -> ModelResponse | None:
        """The consumer left (``close()``, a left loop, Ctrl-C): keep the partial answer."""
        return self.finish(finish_reason="cancelled", prompt_tokens=None, completion_tokens=None)

    def finish(
        self,
        stream: ResponseStream | None = None,
        *,
        finish_reason: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        tokens_per_second: float | None = None,
    ) -> ModelResponse | None:
        """Record the response on the stream (if anyone still holds it).

        Tokens/s is decode speed, after the first token, unless the backend knows better.
        Without a count from the server (llama.cpp's server sends no usage; a stopped
        stream gets none) the streamed pieces are counted: about one token each.
        """
        if stream is None and self._stream is not None:
            stream = self._stream()
        if stream is None:
            return None
        approximate = completion_tokens is None and bool(stream.pieces)
        if approximate:
            completion_tokens = len(stream.pieces)
        end = time.perf_counter()
        ttft = None if self.first is None else self.first - self.start
        if tokens_per_second is None and completion_tokens and ttft is not None:
            decode_time = end - self.first  # type: ignore[operator]
            if completion_tokens > 1 and decode_time > 0:
                tokens_per_second = (completion_tokens - 1) / decode_time
        response = ModelResponse(
            text=stream.text,
            model=stream.model,
            backend=stream.backend,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            time_to_first_token=ttft,
            duration=end - self.start,
            tokens_per_second=tokens_per_second,
            tokens_approximate=approximate,
        )
        stream.response = response
        return response


class StopMatcher:
    """Holds back text that may begin a stop string, for engines that cannot stop on strings."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Return the text that is safe to show now; sets ``stopped`` when a stop string appears."""
        if not self.stops:
            return piece
        self.pending += piece
        cuts = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.stopped = True
            out, self.pending = self.pending[: min(cuts)], ""
            return out
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.pending)), hold, -1):
                if self.pending.endswith(stop[:k]):
                    hold = k
                    break
        split = len(self.pending) - hold
        out, self.pending = self.pending[:split], self.pending[split:]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


@dataclass(frozen=True)
class BackendSettings:
    """Base of each backend's settings schema (subclasses are frozen dataclasses too).

    Unknown keys are errors, not silently ignored. pydantic validates only settings
    that were actually given, so building backends with defaults imports nothing heavy.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}


@functools.cache
def _adapter(schema: type[BackendSettings]) -> Any:
    """One pydantic adapter per schema: building it costs milliseconds, validating microseconds."""
    from pydantic import TypeAdapter

    return TypeAdapter(schema)


def validate_settings(
    schema: type[BackendSettings], settings: Mapping[str, Any], backend_name: str
) -> BackendSettings:
    if not settings:
        return schema()
    from pydantic import ValidationError

    try:
        return _adapter(schema).validate_python(dict(settings))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = f"backends.{backend_name}.settings." + ".".join(str(p) for p in first["loc"])
        shown = "****" if is_secret_key(key) else repr(first.get("input"))[:60]
        if first["type"] in {"extra_forbidden", "unexpected_keyword_argument"}:
            known = [f.name for f in dataclasses.fields(schema)]
            close = difflib.get_close_matches(str(first["loc"][-1]), known, n=1)
            hint = "unknown setting; " + (
                f"did you mean {close[0]!r}?" if close else f"known settings: {', '.join(known)}"
            )
        else:
            hint = f"{first['msg']} (got {shown})"
        raise ConfigError(f"{key}: {hint}", key=key) from None


class BaseBackend:
    """One source of models. Subclasses set ``type_name`` and ``Settings`` and fill the methods."""

    type_name: ClassVar[str] = "base"
    display_name: ClassVar[str] = "Base"
    Settings: ClassVar[type[BackendSettings]] = BackendSettings
    #: Backend-specific keyword options accepted besides the common ones.
    extra_options: ClassVar[frozenset[str]] = frozenset()
    #: What it can do, declared once (see capabilities.py); front ends read it, never guess.
    #: A subclass without its own ``download_model`` gets ``downloads=False``.
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Packages ``check_availability`` imports on first use; the loader imports them one at
    #: a time before probing in parallel (concurrent first imports can see half a module).
    probe_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """``defaults``: config-wide values (timeouts) for settings the user left out."""
        self.name = name or self.type_name
        settings = dict(settings or {})
        register_settings(settings)  # before validation: its errors may quote a value
        validated = validate_settings(self.Settings, settings, self.name)
        fields = {f.name for f in dataclasses.fields(self.Settings)}
        inherited = {k: v for k, v in (defaults or {}).items() if k in fields and k not in settings}
        self.settings = dataclasses.replace(validated, **inherited) if inherited else validated
        self._lock = threading.Lock()
        self.setup()

    def setup(self) -> None:
        """Derive state from ``self.settings``; subclasses override this, not ``__init__``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    @property
    def catalog_name(self) -> str | None:
        """Which shipped catalog lists models to offer (``catalogs/<name>.yaml``); None: none."""
        return self.type_name

    # --- availability -------------------------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        """(available, reason when not): the UI shows the reason, so make it actionable."""
        return True, None

    def is_available(self) -> bool:
        return self.check_availability()[0]

    # --- models -------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        raise NotImplementedError

    def installed_model_details(self) -> list[dict[str, Any]]:
        """Installed models with whatever metadata the backend knows (at least ``name``)."""
        return [{"name": name} for name in self.list_models()]

    def load_model(self, model: str) -> None:
        """Make the next generation fast (load weights, warm the server); no-op where moot."""

    def download_model(
        self,
        model: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        raise NotImplementedError

    # --- generation ---------------------------------------------------------------------------
    def parse_options(self, kwargs: Mapping[str, Any]) -> GenerationOptions:
        opts = parse_options(kwargs, self.extra_options)
        refuse_unsupported(self.capabilities, self.display_name, opts.seed)
        return opts

    def generate_stream(self, prompt: str, model: str, **kwargs: Any) -> ResponseStream:
        raise NotImplementedError

    def generate(self, prompt: str, model: str, **kwargs: Any) -> ModelResponse:
        """Drain the stream: one code path for both, so stats and errors cannot drift apart."""
        stream = self.generate_stream(prompt, model, **kwargs)
        for _ in stream:
            pass
        if stream.response is None:
            raise GenerationError("the stream ended without a final response", stream.text)
        return stream.response

    def get_backend_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type_name,
            "display_name": self.display_name,
            "capabilities": self.capabilities.to_dict(),
            "downloads_models": self.capabilities.downloads,
        }

    # --- capabilities and model names: declared here once, asked by every front end ----------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        legacy = cls.__dict__.get("downloads_models")
        if isinstance(legacy, bool):  # the spelling before capabilities: still honoured
            cls.capabilities = dataclasses.replace(cls.capabilities, downloads=legacy)
            del cls.downloads_models  # type: ignore[misc]
        if cls.capabilities.downloads and cls.download_model is BaseBackend.download_model:
            # Nothing to download with: no front end may offer it, whatever was declared.
            cls.capabilities = dataclasses.replace(cls.capabilities, downloads=False)

    @property
    def downloads_models(self) -> bool:
        """Read-only alias of ``capabilities.downloads`` (the name before capabilities)."""
        return self.capabilities.downloads

    def model_capabilities(self, model: str) -> Capabilities:
        """What ``model`` can do; override where models differ (default: the backend's)."""
        return self.capabilities

    def validate_model_name(self, name: str) -> str:
        """``name`` if this backend could know such a model, else ``ModelNameError`` saying why.

        Only the shape is checked, nothing is looked up. The default is the generic check;
        a backend with a name grammar (Ollama's ``name:tag``) overrides it.
        """
        check_generic_name(name)
        return name

    def model_key(self, name: str) -> str:
        """The key under which two names are one model (Ollama: case, an implied ``:latest``)."""
        return name

    def claims_model_name(self, name: str) -> bool:
        """Whether a bare ``name`` (``%localmind pull NAME``) is meant for this backend."""
        return False
