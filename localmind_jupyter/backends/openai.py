"""OpenAI-compatible servers through the official ``openai`` client (imported on first use).

One backend type serves OpenAI itself and every server that speaks its Chat
Completions API: vLLM, LM Studio, llama.cpp's ``llama-server``. ``preset`` only
changes the default ``base_url``.
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
    import openai

    from ._request import GenerationRequest
    from .contracts import BackendInfo

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_HOST = "api.openai.com"

#: Default base URLs of the servers that speak the same API.
PRESETS: dict[str, str] = {
    "openai": OPENAI_BASE_URL,
    "vllm": "http://localhost:8000/v1",
    "lmstudio": "http://localhost:1234/v1",
    "llamacpp": "http://localhost:8080/v1",
}

#: Local servers accept any key, but the client insists on one.
_PLACEHOLDER_KEY = "not-needed"


@dataclass(frozen=True)
class OpenAISettings(BackendSettings):
    #: ``openai``, ``vllm``, ``lmstudio`` or ``llamacpp``: picks the default base URL.
    preset: str | None = None
    #: Else ``OPENAI_BASE_URL``, else the preset's URL, else OpenAI's.
    base_url: str | None = field(default=None, repr=False)  # may carry user:password@
    #: Write ``${MY_KEY}`` in config.yaml rather than the key itself. Unset: ``OPENAI_API_KEY``,
    #: but only for OpenAI's own API; any other server gets no key (see docs/backends.md).
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    probe_timeout: float = 2.0
    #: Ask for token usage in streams (``stream_options.include_usage``); old servers may refuse.
    include_usage: bool = True
    #: Models to offer when the server cannot list them.
    models: list[str] = field(default_factory=list)


class OpenAIBackend(BaseBackend):
    type_name = "openai"
    display_name = "OpenAI-compatible"
    #: Remote (or self-served) models: nothing to download.
    capabilities = Capabilities(downloads=False, streaming=True, seed=True)
    probe_modules = ("openai", "openai.resources.models", "httpcore", "httpcore2")
    Settings = OpenAISettings
    settings: OpenAISettings

    def setup(self) -> None:
        preset = self.settings.preset
        if preset is not None and preset not in PRESETS:
            key = f"backends.{self.name}.settings.preset"
            raise ConfigError(
                f"{key}: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}", key=key
            )
        self.base_url = (self.settings.base_url or self._default_base_url()).rstrip("/")
        problem = check_url_credentials(self.base_url, f"backends.{self.name}.settings.base_url")
        if problem:
            raise ConfigError(problem, key=f"backends.{self.name}.settings.base_url")
        self._api_key = self.settings.api_key or self._environment_key()
        register(self._api_key)
        register_url(self.base_url)
        self._client: openai.OpenAI | None = None

    def _environment_key(self) -> str | None:
        """``OPENAI_API_KEY`` is OpenAI's: it goes to api.openai.com and nowhere else."""
        return vendor_key(self.base_url, OPENAI_HOST, "OPENAI_API_KEY")

    def _key_hint(self) -> str:
        """Where the key for this server comes from, for messages about a refused key."""
        setting = f"backends.{self.name}.settings.api_key"
        if self._environment_key() is not None or self.is_openai_cloud:
            return f"set OPENAI_API_KEY or {setting}"
        return f"set {setting} (OPENAI_API_KEY is sent only to api.openai.com)"

    def _default_base_url(self) -> str:
        """``OPENAI_BASE_URL`` (for the openai type), else the preset's URL."""
        return os.environ.get("OPENAI_BASE_URL") or PRESETS[self.settings.preset or "openai"]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {redact(self.base_url)}>"

    @property
    def catalog_name(self) -> str | None:
        """OpenAI's own models only where this backend talks to OpenAI."""
        return "openai" if self.is_openai_cloud else None

    @property
    def is_openai_cloud(self) -> bool:
        return self.base_url.startswith(OPENAI_BASE_URL)

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            if self._api_key is None and self.is_openai_cloud:
                raise BackendUnavailable(
                    "no OpenAI API key — set OPENAI_API_KEY or "
                    f"backends.{self.name}.settings.api_key (e.g. '${{OPENAI_API_KEY}}')"
                )
            import openai

            from ._retry import resending

            with self._lock:
                if self._client is None:
                    self._client = openai.OpenAI(
                        base_url=self.base_url,
                        api_key=self._api_key or _PLACEHOLDER_KEY,
                        timeout=openai.Timeout(
                            self.settings.read_timeout, connect=self.settings.connect_timeout
                        ),
                        max_retries=0,
                        http_client=resending(openai.DefaultHttpxClient)(),
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
        """Map an ``openai`` exception to ours, with the fix in the message and no secret in it."""
        import openai

        message = redact(_api_message(exc), self._api_key)
        if isinstance(exc, openai.APIConnectionError):
            if mid_stream:
                return GenerationError(
                    f"the connection to {self.base_url} dropped mid-answer; the partial answer "
                    "is kept",
                    partial,
                )
            return BackendUnavailable(
                f"cannot reach the OpenAI-compatible server at {self.base_url} — is it running? "
                f"Check backends.{self.name}.settings.base_url"
            )
        if isinstance(exc, openai.AuthenticationError):
            return BackendUnavailable(
                f"{self.base_url} rejected the API key (HTTP 401) — {self._key_hint()}"
            )
        if isinstance(exc, openai.NotFoundError) and model is not None:
            return ModelNotFound(
                f"model '{model}' is not served at {self.base_url}{self._served_hint()}"
            )
        if isinstance(exc, openai.BadRequestError):
            return OptionError(f"{self.base_url} rejected the request: {message}")
        if isinstance(exc, openai.RateLimitError):
            return GenerationError(
                f"{self.base_url} is rate limiting requests (HTTP 429): {message} — wait and retry",
                partial,
            )
        if isinstance(exc, openai.APIStatusError):
            return GenerationError(
                f"{self.base_url} answered HTTP {exc.status_code}: {message}", partial
            )
        if isinstance(exc, openai.APIError):
            return GenerationError(f"the server reported an error mid-answer: {message}", partial)
        return GenerationError(f"unexpected failure: {redact(str(exc), self._api_key)}", partial)

    def _served_hint(self) -> str:
        try:
            names = self.list_models()
        except Exception:  # noqa: BLE001 - only a hint
            return ""
        return f" (served: {', '.join(names[:8])})" if names else ""

    # --- contract ---------------------------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        available, reason = self._probe()
        return available, redact(reason) if reason else None

    def _probe(self) -> tuple[bool, str | None]:
        import openai

        try:
            client = self.client.with_options(timeout=self.settings.probe_timeout)
            client.models.list()
        except BackendUnavailable as exc:
            return False, str(exc)
        except openai.APIConnectionError as exc:
            why = "connection refused" if "refused" in str(exc.__cause__).lower() else "no answer"
            return False, f"{why} at {self.base_url}"
        except openai.AuthenticationError:
            return False, f"{self.base_url} rejected the API key (HTTP 401)"
        except openai.APIStatusError as exc:
            if self.settings.models:
                return True, None  # the server cannot list, but models are configured
            return False, f"{self.base_url} answered HTTP {exc.status_code} to /models"
        return True, None

    def list_models(self) -> list[str]:
        import openai

        try:
            return sorted(m.id for m in self.client.models.list())
        except openai.APIStatusError:
            if self.settings.models:
                return list(self.settings.models)
            raise
        except openai.APIError as exc:
            raise self._translate(exc) from None

    def download_model(
        self,
        model: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        raise DownloadError(
            f"the {self.display_name} backend serves remote models; nothing to download — the "
            f"server at {self.base_url} decides which models it serves"
        )

    def get_backend_info(self) -> BackendInfo:
        return {
            **super().get_backend_info(),
            "base_url": redact(self.base_url),
            "preset": self.settings.preset,
            "api_key_set": self._api_key is not None,
        }

    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        import openai

        params: dict[str, Any] = {
            "model": request.model,
            "messages": request.chat_messages(),
            "stream": True,
        }
        if self.settings.include_usage:
            params["stream_options"] = {"include_usage": True}
        for name in ("temperature", "top_p", "seed", "max_tokens"):
            value = getattr(request, name)
            if value is not None:
                params[name] = value
        if request.stop:
            params["stop"] = request.stop
        try:
            chunks = self.client.chat.completions.create(**params)
        except openai.APIError as exc:
            raise self._translate(exc, request.model) from None
        finish_reason: str | None = None
        usage: Any = None
        try:
            yield Started()
            for chunk in chunks:
                if chunk.usage is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                content = choice.delta.content if choice.delta is not None else None
                if content:
                    yield content
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        except openai.APIError as exc:
            raise self._translate(exc, request.model, mid_stream=True) from None
        finally:
            chunks.close()
        if finish_reason is None:
            raise GenerationError(
                f"the stream from {self.base_url} ended before the answer finished; the partial "
                "answer is kept"
            )
        yield Usage(
            getattr(usage, "prompt_tokens", None),
            getattr(usage, "completion_tokens", None),
            finish_reason,
        )


def _api_message(exc: Exception) -> str:
    """The server's own error message, without the SDK's 'Error code: …' wrapping."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
    return str(getattr(exc, "message", None) or exc)


class _ServerPreset(OpenAIBackend):
    """An OpenAI-compatible inference server that also reports its version at ``/version``."""

    default_base_url: str = "http://localhost:8000/v1"

    def setup(self) -> None:
        super().setup()
        self._server_version: str | None = None

    def _default_base_url(self) -> str:
        return self.default_base_url  # OPENAI_BASE_URL is meant for the openai type

    def _environment_key(self) -> str | None:
        return None  # OPENAI_API_KEY is OpenAI's; a vLLM server gets only its configured key

    def check_availability(self) -> tuple[bool, str | None]:
        available, reason = super().check_availability()
        if available:
            self._server_version = self._fetch_version()
        return available, reason

    def _fetch_version(self) -> str | None:
        import httpx

        root = self.base_url.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            response = httpx.get(
                f"{root}/version", headers=headers, timeout=self.settings.probe_timeout
            )
            version = response.json().get("version") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return str(version) if version is not None else None

    def get_backend_info(self) -> BackendInfo:
        return {**super().get_backend_info(), "server_version": self._server_version}


class VLLMBackend(_ServerPreset):
    """vLLM (``vllm serve MODEL``): the OpenAI-compatible backend with vLLM's defaults."""

    type_name = "vllm"
    display_name = "vLLM"
    default_base_url = "http://localhost:8000/v1"


class TensorRTBackend(_ServerPreset):
    """NVIDIA TensorRT-LLM (``trtllm-serve MODEL``), also OpenAI-compatible on port 8000."""

    type_name = "tensorrt"
    display_name = "TensorRT-LLM"
    default_base_url = "http://localhost:8000/v1"
