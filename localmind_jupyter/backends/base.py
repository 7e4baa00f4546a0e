"""The contract every backend follows, so front ends never care which one answers.

A backend is built from the ``settings`` mapping of its entry in ``config.yaml``
and registered under the entry-point group ``localmind.backends``.
"""

from __future__ import annotations

import dataclasses
import difflib
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.images import ImageLimits
from ..errors import ConfigError, GenerationError
from ..secrets import is_secret_key, register_settings
from ._checks import check_generic_name, refuse_unsupported
from ._image_settings import check_image_settings, image_limits, vision_example
from ._response import failed_response
from ._stream import (
    Delta,
    ModelResponse,
    ResponseStream,
    Started,
    StreamTimer,
    Thinking,
    Usage,
    open_stream,
)
from ._think_tags import split_think_tags
from .capabilities import Capabilities

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from ._request import GenerationRequest
    from .contracts import BackendInfo, InstalledModel

__all__ = [
    "AnswerProvider",
    "AnswerSink",
    "BackendSettings",
    "BaseBackend",
    "Delta",
    "DownloadProgress",
    "GenerationRequest",
    "ModelResponse",
    "ProgressCallback",
    "ResponseStream",
    "Started",
    "StreamTimer",
    "Thinking",
    "Usage",
]

#: ``provider(backend, request)``: a stream that answers the request instead of the engine
#: (replay's play mode), or None to let the engine answer; set by the loader.
AnswerProvider = Callable[["BaseBackend", "GenerationRequest"], "ResponseStream | None"]

#: Called with each ``DownloadProgress`` of a download (from the downloading thread).
ProgressCallback = Callable[["DownloadProgress"], None]

#: ``sink(backend, request, response, error)``: told once how each generation ended (the
#: answer log); ``response`` is None when it failed before or during the answer.
AnswerSink = Callable[
    ["BaseBackend", "GenerationRequest", "ModelResponse | None", "BaseException | None"], None
]


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


def _parse_options(
    kwargs: Mapping[str, Any], extra_allowed: frozenset[str] = frozenset()
) -> GenerationRequest:
    """Validate keyword options so a typo or a bad value fails loudly, not silently."""
    from ._request import GenerationRequest

    return GenerationRequest.build("", "", kwargs, extra_allowed)


def __getattr__(name: str) -> Any:
    """``GenerationRequest`` (pydantic) is imported on first use, not with this module."""
    if name in {"GenerationRequest", "GenerationOptions"}:
        from ._request import GenerationRequest

        return GenerationRequest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class BackendSettings:
    """Base of each backend's settings schema (subclasses are frozen dataclasses too).

    Unknown keys are errors, not silently ignored. pydantic validates only settings
    that were actually given, so building backends with defaults imports nothing heavy.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    #: Images: the long edge (pixels) and encoded size (bytes) sent at most; None: the
    #: backend's ``default_image_limits``. Keyword-only, so subclasses keep their order.
    image_max_edge: int | None = field(default=None, kw_only=True)
    image_max_bytes: int | None = field(default=None, kw_only=True)


_ADAPTERS: dict[type[BackendSettings], TypeAdapter[BackendSettings]] = {}


def _adapter(schema: type[BackendSettings]) -> TypeAdapter[BackendSettings]:
    """One pydantic adapter per schema: building it costs milliseconds, validating microseconds."""
    adapter = _ADAPTERS.get(schema)
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = _ADAPTERS.setdefault(schema, TypeAdapter(schema))
    return adapter


def _validate_settings(
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
    #: False for engines that cannot stop on strings: the base then cuts the text itself.
    stops_on_strings: ClassVar[bool] = True
    #: True for engines that leave a reasoning model's ``<think>…</think>`` in the text:
    #: the base then splits the trace out as ``Thinking``.
    think_tags: ClassVar[bool] = False
    #: Packages ``check_availability`` imports on first use; the loader imports them one at
    #: a time before probing in parallel (concurrent first imports can see half a module).
    probe_modules: ClassVar[tuple[str, ...]] = ()
    #: How many requests a batch sends at once by default (a server answers several in
    #: parallel; an in-process engine computes one at a time). Config may override it.
    default_concurrency: ClassVar[int] = 1
    #: How many prompts the engine decodes together in one ``generate_batch`` pass (an
    #: instance may set its own from a setting: Transformers' ``batch_size``).
    batch_size: int = 1
    #: Told how every generation ended; the loader sets it to the answer log (None: off).
    answer_sink: AnswerSink | None = None
    #: Asked first for every ``generate_stream``; the loader sets it to replay (None: off).
    answer_provider: AnswerProvider | None = None
    #: The image size the engine takes; settings ``image_max_edge``/``image_max_bytes``
    #: override it per backend entry (``image_limits``).
    default_image_limits: ClassVar[ImageLimits] = ImageLimits()

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
        validated = _validate_settings(self.Settings, settings, self.name)
        fields = {f.name for f in dataclasses.fields(self.Settings)}
        inherited = {k: v for k, v in (defaults or {}).items() if k in fields and k not in settings}
        self.settings = dataclasses.replace(validated, **inherited) if inherited else validated
        check_image_settings(self.settings, self.name)
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

    @property
    def image_limits(self) -> ImageLimits:
        """The limits images are prepared to for this backend: its defaults, or the settings."""
        return image_limits(self.settings, self.default_image_limits)

    # --- availability -------------------------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        """(available, reason when not): the UI shows the reason, so make it actionable."""
        return True, None

    def is_available(self) -> bool:
        return self.check_availability()[0]

    # --- models -------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        raise NotImplementedError

    def installed_model_details(self) -> list[InstalledModel]:
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
    def parse_options(self, kwargs: Mapping[str, Any]) -> GenerationRequest:
        request = _parse_options(kwargs, self.extra_options)
        refuse_unsupported(self.capabilities, self.display_name, request.seed)
        return request

    def build_request(self, prompt: str, model: str, **kwargs: Any) -> GenerationRequest:
        """The typed request; a backend that checks its ``extra`` options extends this."""
        from ._request import GenerationRequest

        request = GenerationRequest.build(prompt, model, kwargs, self.extra_options)
        own = self.model_capabilities(model)
        refuse_unsupported(
            own,
            self.display_name,
            request.seed,
            schema=request.output_schema,
            json_mode=request.json_mode,
            think=request.think,
            model=model if own != self.capabilities else "",
        )
        if request.has_images and not own.images:  # the catalog is read only to refuse
            refuse_unsupported(
                own,
                self.display_name,
                None,
                images=True,
                model=model,
                vision_example=vision_example(self.catalog_name),
            )
        return request

    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        """The one method a backend writes: yield ``Started()`` once the request is sent
        (errors before it raise from ``generate_stream()``), then text pieces (``str``),
        ``Thinking`` and ``Usage``; release the connection or worker in ``finally``.
        """
        raise NotImplementedError
        yield  # pragma: no cover - makes this a generator for type checkers

    def generate_stream(self, prompt: str, model: str, **kwargs: Any) -> ResponseStream:
        """Validate, start ``deltas()`` up to ``Started``, and keep the books of the rest."""
        request = self.build_request(prompt, model, **kwargs)
        provider = self.answer_provider
        if provider is not None:
            provided = provider(self, request)
            if provided is not None:
                return provided
        stops = None if self.stops_on_strings else request.stop
        source = self.deltas(request)
        if self.think_tags:
            source = split_think_tags(source)
        sink = self.answer_sink
        on_end = None
        if sink is not None:

            def on_end(response: ModelResponse | None, error: BaseException | None) -> None:
                sink(self, request, response, error)

        return open_stream(source, model, self.name, stops, request.output_schema, on_end)

    def generate(self, prompt: str, model: str, **kwargs: Any) -> ModelResponse:
        """Drain the stream: one code path for both, so stats and errors cannot drift apart."""
        stream = self.generate_stream(prompt, model, **kwargs)
        for _ in stream:
            pass
        if stream.response is None:
            raise GenerationError("the stream ended without a final response", stream.text)
        return stream.response

    def generate_batch(
        self,
        prompts: Sequence[str],
        model: str,
        *,
        cancel: threading.Event | None = None,
        **kwargs: Any,
    ) -> list[ModelResponse]:
        """One answer per prompt, in order, with the same options; never raises for one row.

        A prompt that fails gives a response with ``finish_reason="error"`` and ``error``
        set; once ``cancel`` is set the prompts not yet answered come back ``"cancelled"``.
        Bad options raise before any work. This default answers one prompt at a time; an
        engine that decodes several sequences per step (``batch_size > 1``) overrides it.
        """
        self.build_request("", model, **kwargs)  # bad options fail before the first prompt
        answers: list[ModelResponse] = []
        for prompt in prompts:
            if cancel is not None and cancel.is_set():
                answers.append(failed_response(self.name, model, "cancelled", None))
                continue
            try:
                answers.append(self.generate(prompt, model, **kwargs))
            except Exception as exc:  # noqa: BLE001 - one bad row must not sink the batch
                answers.append(failed_response(self.name, model, "error", exc))
        return answers

    def get_backend_info(self) -> BackendInfo:
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
            del cls.downloads_models
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
