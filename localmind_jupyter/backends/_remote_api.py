"""The family base of the backends that talk to a server through its vendor's SDK.

The ``openai`` and ``anthropic`` SDKs are generated alike: the same exception tree
(connection error, status errors by HTTP code, in-band API errors), the same client
options. So the client's lifetime, availability, model listing, the translation of the
SDK's exceptions into LocalMind's (redacted, each with its fix) and backend info are
written here once; a subclass maps requests, parses its stream and words what differs.
Keys follow ``secrets.vendor_key``: an environment key goes to its vendor's API only.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from ..errors import (
    BackendUnavailable,
    ConfigError,
    DownloadError,
    GenerationError,
    LocalMindError,
    ModelNotFound,
    OptionError,
)
from ..secrets import check_url_credentials, redact, register, register_url, vendor_key
from ._retry_hints import mark, retry_after, retryable_status
from .base import BackendSettings, BaseBackend, ProgressCallback
from .capabilities import Capabilities

if TYPE_CHECKING:
    from .contracts import BackendInfo

__all__ = ["RemoteAPIBackend", "RemoteAPISettings", "SDKErrors"]

#: A server of your own may want no key, but the SDKs insist on one.
PLACEHOLDER_KEY = "not-needed"


class _Client(Protocol):
    def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Client)


@dataclass(frozen=True)
class RemoteAPISettings(BackendSettings):
    """What every SDK backend takes; a subclass's settings add their own fields."""

    #: Else the backend's default (``OPENAI_BASE_URL``, a preset's URL, Anthropic's API…).
    base_url: str | None = field(default=None, repr=False)  # may carry user:password@
    #: Write ``${MY_KEY}`` in config.yaml rather than the key itself. Unset: the vendor's
    #: environment key, but only for the vendor's own API (see docs/backends.md).
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    probe_timeout: float = 2.0


@dataclass(frozen=True)
class SDKErrors:
    """The SDK's exception classes the ladder tells apart (imported with the SDK)."""

    #: Nothing or no complete answer came back (includes timeouts).
    connection: type[Exception]
    #: An HTTP error status; its ``status_code`` picks the rung.
    status: type[Exception]
    #: Every error the SDK raises, in-band stream errors included.
    api: type[Exception]


class RemoteAPIBackend(BaseBackend, Generic[ClientT]):
    """An SDK client built lazily, once, under the lock; errors translated on one ladder."""

    #: Remote (or self-served) models: nothing to download.
    capabilities: ClassVar[Capabilities] = Capabilities(downloads=False, streaming=True)
    Settings: ClassVar[type[BackendSettings]] = RemoteAPISettings
    settings: RemoteAPISettings
    #: The vendor's API host and the environment variable of its key (sent nowhere else).
    vendor_host: ClassVar[str] = ""
    vendor_key_env: ClassVar[str] = ""
    #: Who reports an error in messages ("the server", "the Anthropic API").
    reporter: ClassVar[str] = "the server"
    #: Opens the list of models in a "not served" message (a literal, as the docs quote it).
    served_label: ClassVar[str] = " (served: "

    def setup(self) -> None:
        self.base_url = (self.settings.base_url or self._default_base_url()).rstrip("/")
        key = f"backends.{self.name}.settings.base_url"
        problem = check_url_credentials(self.base_url, key)
        if problem:
            raise ConfigError(problem, key=key)
        self._api_key = self.settings.api_key or self._environment_key()
        register(self._api_key)
        register_url(self.base_url)
        self._client: ClientT | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {redact(self.base_url)}>"

    # --- what a subclass words or maps ---------------------------------------------------
    @abstractmethod
    def _default_base_url(self) -> str:
        """The base URL when ``base_url`` is not set."""

    @abstractmethod
    def _needs_key(self) -> bool:
        """The vendor's own API, which refuses every request without a key."""

    @abstractmethod
    def _no_key_message(self) -> str: ...

    @abstractmethod
    def _unreachable_message(self) -> str: ...

    @abstractmethod
    def _build_client(self) -> ClientT:
        """The SDK client: explicit key, no retries (``_retry.resending`` does the one safe one)."""

    @abstractmethod
    def _sdk_errors(self) -> SDKErrors: ...

    @abstractmethod
    def _probe_models(self) -> None:
        """The cheapest listing request, within ``probe_timeout``."""

    @abstractmethod
    def _served_models(self) -> list[str]: ...

    def _unlisted_models(self, exc: Exception) -> list[str] | None:
        """Models to offer when listing failed with ``exc``; None: report the failure."""
        return None

    def _environment_key(self) -> str | None:
        return vendor_key(self.base_url, self.vendor_host, self.vendor_key_env)

    def _key_hint(self) -> str:
        """Where the key for this server comes from, for messages about a refused key."""
        setting = f"backends.{self.name}.settings.api_key"
        if self._environment_key() is not None or self._needs_key():
            return f"set {self.vendor_key_env} or {setting}"
        return f"set {setting} ({self.vendor_key_env} is sent only to {self.vendor_host})"

    def _api_key_or_placeholder(self) -> str:
        return self._api_key or PLACEHOLDER_KEY

    # --- the client's lifetime -----------------------------------------------------------
    @property
    def client(self) -> ClientT:
        client = self._client
        if client is None:
            if self._api_key is None and self._needs_key():
                raise BackendUnavailable(self._no_key_message())
            with self._lock:
                if self._client is None:
                    self._client = self._build_client()
                client = self._client
        return client

    def close(self) -> None:
        """Close the connections; the next request builds a fresh client."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- errors --------------------------------------------------------------------------
    def _translate(
        self,
        exc: Exception,
        model: str | None = None,
        partial: str = "",
        *,
        mid_stream: bool = False,
    ) -> Exception:
        """Map an SDK exception to ours, with the fix in the message and no secret in it,
        marked ``retryable`` when sending it again may work (see ``_retry_hints``)."""
        error = self._translated(exc, model, partial, mid_stream=mid_stream)
        errors = self._sdk_errors()
        status = status_code(exc) if isinstance(exc, errors.status) else None
        if isinstance(exc, errors.connection) or (mid_stream and is_transport_error(exc)):
            return mark(error)
        if isinstance(exc, errors.api) and (status is None or (mid_stream and status < 400)):
            return mark(error, _in_band_transient(exc))
        if status is not None and retryable_status(status):
            response = getattr(exc, "response", None)
            return mark(error, after=retry_after(getattr(response, "headers", None)))
        return error

    def _translated(
        self, exc: Exception, model: str | None, partial: str, *, mid_stream: bool
    ) -> LocalMindError:
        errors = self._sdk_errors()
        base = self.base_url
        message = redact(api_message(exc), self._api_key)
        status = status_code(exc) if isinstance(exc, errors.status) else None
        if isinstance(exc, errors.connection) or (mid_stream and is_transport_error(exc)):
            if mid_stream:
                return GenerationError(
                    f"the connection to {base} dropped mid-answer; the partial answer is kept",
                    partial,
                )
            return BackendUnavailable(self._unreachable_message())
        if isinstance(exc, errors.api) and (status is None or (mid_stream and status < 400)):
            # An ``error`` event inside a stream that began with HTTP 200, or an SDK check.
            kind = api_error_type(exc)
            shown = f" ({kind})" if kind else ""
            if mid_stream:
                return GenerationError(
                    f"{self.reporter} reported an error mid-answer{shown}: {message}; the "
                    "partial answer is kept",
                    partial,
                )
            return GenerationError(f"{self.reporter} reported an error{shown}: {message}", partial)
        if status == 401:
            return BackendUnavailable(
                f"{base} rejected the API key (HTTP 401) — {self._key_hint()}"
            )
        if status == 403:
            return BackendUnavailable(f"{base} refused this API key (HTTP 403): {message}")
        if status == 404 and model is not None:
            return ModelNotFound(f"model '{model}' is not served at {base}{self._served_hint()}")
        if status == 400:
            return OptionError(f"{base} rejected the request: {message}")
        if status == 429:
            return GenerationError(
                f"{base} is rate limiting requests (HTTP 429): {message} — wait and retry", partial
            )
        if status is not None:
            if status == 529 or api_error_type(exc) == "overloaded_error":
                return GenerationError(
                    f"{self.reporter} is overloaded (HTTP {status}): {message} — wait a moment "
                    "and retry",
                    partial,
                )
            return GenerationError(f"{base} answered HTTP {status}: {message}", partial)
        return GenerationError(f"unexpected failure: {redact(str(exc), self._api_key)}", partial)

    def _served_hint(self) -> str:
        try:
            names = self.list_models()
        except Exception:  # noqa: BLE001 - only a hint
            return ""
        return f"{self.served_label}{', '.join(names[:8])})" if names else ""

    # --- availability and models ---------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        available, reason = self._probe()
        return available, redact(reason) if reason else None

    def _probe(self) -> tuple[bool, str | None]:
        if self._api_key is None and self._needs_key():
            return False, self._no_key_message()
        errors = self._sdk_errors()
        try:
            self._probe_models()
        except BackendUnavailable as exc:
            return False, str(exc)
        except errors.connection as exc:
            why = "connection refused" if "refused" in str(exc.__cause__).lower() else "no answer"
            return False, f"{why} at {self.base_url}"
        except errors.status as exc:
            status = status_code(exc)
            if status == 401:
                return False, (
                    f"{self.base_url} rejected the API key (HTTP 401) — {self._key_hint()}"
                )
            if status == 403:
                return False, f"{self.base_url} refused this API key (HTTP 403)"
            if self._unlisted_models(exc) is not None:
                return True, None  # reachable, the key accepted; the models come from elsewhere
            return False, f"{self.base_url} answered HTTP {status} to /models"
        return True, None

    def list_models(self) -> list[str]:
        """The models the server lists, else what ``_unlisted_models`` offers instead."""
        errors = self._sdk_errors()
        try:
            return self._served_models()
        except (BackendUnavailable, errors.api, AttributeError) as exc:
            # AttributeError: an SDK too old to have the Models API.
            fallback = self._unlisted_models(exc)
            if fallback is not None:
                return fallback
            if isinstance(exc, errors.api):
                raise self._translate(exc) from None
            raise

    def download_model(
        self,
        model: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        raise DownloadError(
            f"the {self.display_name} backend serves remote models; nothing to download — "
            f"{self._no_download_hint(model)}"
        )

    def _no_download_hint(self, model: str) -> str:
        return f"the server at {self.base_url} decides which models it serves"

    def get_backend_info(self) -> BackendInfo:
        return {
            **super().get_backend_info(),
            "base_url": redact(self.base_url),
            "api_key_set": self._api_key is not None,
        }


def status_code(exc: Exception) -> int | None:
    """The HTTP status of an SDK status error (``APIStatusError.status_code``)."""
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _error_payload(exc: Exception) -> dict[str, Any] | None:
    """The ``error`` object of the answer's body (or the body itself when it is one)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner
    return None


def api_error_type(exc: Exception) -> str | None:
    """The API's error ``type`` (``overloaded_error``, ``server_error``), if it gave one."""
    payload = _error_payload(exc)
    kind = payload.get("type") if payload else None
    return kind if isinstance(kind, str) else None


def api_message(exc: Exception) -> str:
    """The server's own error message, without the SDK's 'Error code: …' wrapping."""
    payload = _error_payload(exc)
    text = payload.get("message") if payload else None
    if isinstance(text, str):
        return text
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(getattr(exc, "message", None) or exc)


#: In-band error types (an ``error`` event in a stream that began with HTTP 200) that
#: stand for a 429 or 5xx: Anthropic's overload and rate limit, OpenAI's server error.
_TRANSIENT_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error", "server_error"})


def _in_band_transient(exc: Exception) -> bool:
    """An in-band error that says "not now" (overloaded, rate limited, a server hiccup)."""
    if api_error_type(exc) in _TRANSIENT_TYPES:
        return True
    text = api_message(exc).lower()
    return "overloaded" in text or "rate limit" in text


def is_transport_error(exc: BaseException) -> bool:
    """A network failure of httpx (or httpx2), which an SDK may let through mid-stream."""
    return any(
        cls.__name__ == "TransportError" and cls.__module__.startswith("httpx")
        for cls in type(exc).__mro__
    )
