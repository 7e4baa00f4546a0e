"""Anthropic's Claude models through the official ``anthropic`` client (imported on first use).

The Messages API differs from OpenAI's Chat Completions in ways this backend hides:
the system prompt is a top-level ``system`` field, ``max_tokens`` is required (the
``max_tokens`` setting gives the default), stop strings are ``stop_sequences``, and
``seed`` does not exist, so asking for one is an ``OptionError`` rather than silence.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import (
    BackendUnavailable,
    ConfigError,
    DownloadError,
    GenerationError,
    ModelNotFound,
    OptionError,
)
from ..secrets import check_url_credentials, redact, register, register_url, vendor_key
from .base import BackendSettings, BaseBackend, Delta, ProgressCallback, Started, Usage
from .capabilities import Capabilities

if TYPE_CHECKING:
    import anthropic

    from ._request import GenerationRequest
    from .contracts import BackendInfo

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_HOST = "api.anthropic.com"
#: An Anthropic-compatible server of your own may want no key, but the client insists on one.
_PLACEHOLDER_KEY = "not-needed"

#: The API's ``stop_reason`` in the words every backend uses; others pass through as they are.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
}


@dataclass(frozen=True)
class AnthropicSettings(BackendSettings):
    #: Else ``ANTHROPIC_BASE_URL``, else Anthropic's own API.
    base_url: str | None = field(default=None, repr=False)  # may carry user:password@
    #: Write ``${MY_KEY}`` in config.yaml rather than the key itself. Unset: ``ANTHROPIC_API_KEY``,
    #: but only for Anthropic's own API; any other server gets no key (see docs/backends.md).
    api_key: str | None = field(default=None, repr=False)
    #: The API requires ``max_tokens``: used when a generation does not give one.
    max_tokens: int = 1024
    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    probe_timeout: float = 2.0


class AnthropicBackend(BaseBackend):
    type_name = "anthropic"
    display_name = "Anthropic"
    #: Remote models; the Messages API has no seed, so ``seed`` is refused, not dropped.
    capabilities = Capabilities(downloads=False, streaming=True, seed=False)
    probe_modules = ("anthropic", "httpcore", "httpcore2", "opentelemetry.propagate")
    Settings = AnthropicSettings
    settings: AnthropicSettings

    def setup(self) -> None:
        self.base_url = (
            self.settings.base_url or os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_BASE_URL
        ).rstrip("/")
        key = f"backends.{self.name}.settings.base_url"
        problem = check_url_credentials(self.base_url, key)
        if problem:
            raise ConfigError(problem, key=key)
        # ANTHROPIC_API_KEY is Anthropic's: it goes to api.anthropic.com and nowhere else.
        self._official = _is_official(self.base_url)
        self._api_key = self.settings.api_key or vendor_key(
            self.base_url, ANTHROPIC_HOST, "ANTHROPIC_API_KEY"
        )
        register(self._api_key)
        register_url(self.base_url)
        self._client: anthropic.Anthropic | None = None

    def __repr__(self) -> str:
        return f"<AnthropicBackend {self.name!r} at {redact(self.base_url)}>"

    def _no_key_message(self) -> str:
        return (
            "no Anthropic API key — set ANTHROPIC_API_KEY or "
            f"backends.{self.name}.settings.api_key (e.g. '${{ANTHROPIC_API_KEY}}')"
        )

    def _key_hint(self) -> str:
        setting = f"backends.{self.name}.settings.api_key"
        if self._official:
            return f"set ANTHROPIC_API_KEY or {setting}"
        return f"set {setting} (ANTHROPIC_API_KEY is sent only to api.anthropic.com)"

    @property
    def client(self) -> anthropic.Anthropic:
        if self._client is None:
            if self._api_key is None and self._official:
                raise BackendUnavailable(self._no_key_message())
            import anthropic

            from ._retry import resending

            with self._lock:
                if self._client is None:
                    # An explicit key: the SDK then reads no credentials from the environment
                    # or its profile files, so what this backend reports is what it uses.
                    self._client = anthropic.Anthropic(
                        base_url=self.base_url,
                        api_key=self._api_key or _PLACEHOLDER_KEY,
                        timeout=anthropic.Timeout(
                            self.settings.read_timeout, connect=self.settings.connect_timeout
                        ),
                        max_retries=0,
                        http_client=resending(anthropic.DefaultHttpxClient)(),
                    )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- errors -----------------------------------------------------------------------------
    def _translate(
        self,
        exc: Exception,
        model: str | None = None,
        partial: str = "",
        *,
        mid_stream: bool = False,
    ) -> Exception:
        """Map an ``anthropic`` exception to ours, with the fix in the message and no secret."""
        import anthropic

        message = redact(_api_message(exc), self._api_key)
        if isinstance(exc, anthropic.APIConnectionError):
            if mid_stream:
                return GenerationError(
                    f"the connection to {self.base_url} dropped mid-answer; the partial answer "
                    "is kept",
                    partial,
                )
            return BackendUnavailable(
                f"cannot reach the Anthropic API at {self.base_url} — check the network, or "
                f"backends.{self.name}.settings.base_url"
            )
        if mid_stream and isinstance(exc, anthropic.APIStatusError) and exc.status_code < 400:
            # An ``error`` event inside a stream that began with HTTP 200.
            kind = _api_error_type(exc)
            return GenerationError(
                f"the Anthropic API reported an error mid-answer ({kind}): {message}; the "
                "partial answer is kept",
                partial,
            )
        if isinstance(exc, anthropic.AuthenticationError):
            return BackendUnavailable(
                f"{self.base_url} rejected the API key (HTTP 401) — {self._key_hint()}"
            )
        if isinstance(exc, anthropic.PermissionDeniedError):
            return BackendUnavailable(f"{self.base_url} refused this API key (HTTP 403): {message}")
        if isinstance(exc, anthropic.NotFoundError) and model is not None:
            return ModelNotFound(
                f"model '{model}' is not served at {self.base_url}{self._served_hint()}"
            )
        if isinstance(exc, anthropic.BadRequestError):
            return OptionError(f"{self.base_url} rejected the request: {message}")
        if isinstance(exc, anthropic.RateLimitError):
            return GenerationError(
                f"{self.base_url} is rate limiting requests (HTTP 429): {message} — wait and retry",
                partial,
            )
        if isinstance(exc, anthropic.APIStatusError):
            if exc.status_code == 529 or _api_error_type(exc) == "overloaded_error":
                return GenerationError(
                    f"the Anthropic API is overloaded (HTTP {exc.status_code}): {message} — "
                    "wait a moment and retry",
                    partial,
                )
            return GenerationError(
                f"{self.base_url} answered HTTP {exc.status_code}: {message}", partial
            )
        if isinstance(exc, anthropic.APIError):
            return GenerationError(f"the Anthropic API reported an error: {message}", partial)
        if mid_stream and _is_transport_error(exc):
            return GenerationError(
                f"the connection to {self.base_url} dropped mid-answer; the partial answer is kept",
                partial,
            )
        return GenerationError(f"unexpected failure: {redact(str(exc), self._api_key)}", partial)

    def _served_hint(self) -> str:
        try:
            names = self.list_models()
        except Exception:  # noqa: BLE001 - only a hint
            return ""
        return f" (available: {', '.join(names[:8])})" if names else ""

    # --- contract ---------------------------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        available, reason = self._probe()
        return available, redact(reason) if reason else None

    def _probe(self) -> tuple[bool, str | None]:
        if self._api_key is None and self._official:
            return False, self._no_key_message()
        import anthropic

        try:
            client = self.client.with_options(timeout=self.settings.probe_timeout)
            client.models.list(limit=1)
        except anthropic.APIConnectionError as exc:
            why = "connection refused" if "refused" in str(exc.__cause__).lower() else "no answer"
            return False, f"{why} at {self.base_url}"
        except anthropic.AuthenticationError:
            return False, f"{self.base_url} rejected the API key (HTTP 401) — {self._key_hint()}"
        except anthropic.PermissionDeniedError:
            return False, f"{self.base_url} refused this API key (HTTP 403)"
        except anthropic.APIStatusError:
            return True, None  # reachable and the key is accepted; models come from the catalog
        return True, None

    def list_models(self) -> list[str]:
        """The models the API lists, else (no key, API down or refusing) the shipped catalog."""
        import anthropic

        try:
            return [m.id for m in self.client.models.list()]
        except (BackendUnavailable, anthropic.APIError, AttributeError):
            # AttributeError: an SDK too old to have the Models API.
            return self._catalog_models()

    def _catalog_models(self) -> list[str]:
        from ._catalog import load_catalog

        return [entry.name for entry in load_catalog(self.type_name)]

    def download_model(
        self,
        model: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        raise DownloadError(
            f"the {self.display_name} backend serves remote models; nothing to download — "
            f"use '{model}' directly with an Anthropic API key"
        )

    def get_backend_info(self) -> BackendInfo:
        return {
            **super().get_backend_info(),
            "base_url": redact(self.base_url),
            "api_key_set": self._api_key is not None,
        }

    # --- generation -------------------------------------------------------------------------
    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        """The Messages API body: options it cannot honour fail here, before any request."""
        if request.seed is not None:
            raise OptionError(
                "the Anthropic API does not support seed: its sampling cannot be made "
                "reproducible; leave seed out (temperature=0 gives the most repeatable answers)"
            )
        if request.temperature is not None and request.temperature > 1:
            raise OptionError(
                f"the Anthropic API accepts temperature between 0 and 1, got {request.temperature}"
            )
        systems = [request.system] if request.system else []
        messages: list[dict[str, str]] = []
        for turn in [*request.messages, {"role": "user", "content": request.prompt}]:
            if turn["role"] == "system":  # the API takes system text only at the top level
                systems.append(turn["content"])
            else:
                messages.append(turn)
        params: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens or self.settings.max_tokens,
            "stream": True,
        }
        if systems:
            params["system"] = "\n\n".join(systems)
        # anthropic>=1 dropped these keyword arguments; the API still takes them (on models
        # with sampling options), and extra_body sends the same JSON with 0.x and 1.x alike.
        sampling = {
            name: value
            for name, value in (("temperature", request.temperature), ("top_p", request.top_p))
            if value is not None
        }
        if sampling:
            params["extra_body"] = sampling
        if request.stop:
            params["stop_sequences"] = request.stop
        return params

    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        params = self._params(request)
        client = self.client
        import anthropic

        try:
            events = client.messages.create(**params)
        except anthropic.APIError as exc:
            raise self._translate(exc, request.model) from None
        usage = Usage()
        finished = False
        try:
            yield Started()
            for event in events:
                kind = event.type
                if kind == "content_block_delta":
                    text = getattr(event.delta, "text", None)  # tool input deltas carry none
                    if text:
                        yield text
                elif kind == "message_start":
                    usage.prompt_tokens = _prompt_tokens(event.message.usage)
                    usage.completion_tokens = getattr(event.message.usage, "output_tokens", None)
                elif kind == "message_delta":
                    usage.finish_reason = event.delta.stop_reason or usage.finish_reason
                    if getattr(event.usage, "output_tokens", None) is not None:
                        usage.completion_tokens = event.usage.output_tokens
                    if getattr(event.usage, "input_tokens", None) is not None:
                        usage.prompt_tokens = _prompt_tokens(event.usage)
                elif kind == "message_stop":
                    finished = True
        except Exception as exc:  # noqa: BLE001 - API errors and the HTTP library's own
            raise self._translate(exc, request.model, mid_stream=True) from None
        finally:
            events.close()  # closes the HTTP response: stopping stops at the source
        if not finished and usage.finish_reason is None:
            raise GenerationError(
                f"the stream from {self.base_url} ended before the answer finished; the partial "
                "answer is kept"
            )
        reason = usage.finish_reason
        usage.finish_reason = FINISH_REASONS.get(reason or "", reason)
        yield usage


def _is_official(base_url: str) -> bool:
    """Anthropic's own API, where a key is required (a server of your own may need none)."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(base_url).hostname == ANTHROPIC_HOST
    except ValueError:
        return False


def _prompt_tokens(usage: Any) -> int | None:
    """Input tokens, counting those read from or written to the prompt cache too."""
    total = getattr(usage, "input_tokens", None)
    if total is None:
        return None
    for name in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        total += getattr(usage, name, None) or 0
    return total


def _is_transport_error(exc: BaseException) -> bool:
    """A network failure of httpx (or httpx2), which the SDK lets through mid-stream."""
    return any(
        cls.__name__ == "TransportError" and cls.__module__.startswith("httpx")
        for cls in type(exc).__mro__
    )


def _error_payload(exc: Exception) -> dict[str, Any] | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner
    return None


def _api_error_type(exc: Exception) -> str:
    payload = _error_payload(exc)
    kind = payload.get("type") if payload else None
    return kind if isinstance(kind, str) else "error"


def _api_message(exc: Exception) -> str:
    """The API's own error message, without the SDK's 'Error code: …' wrapping."""
    payload = _error_payload(exc)
    if payload and isinstance(payload.get("message"), str):
        return payload["message"]
    return str(getattr(exc, "message", None) or exc)
