"""OpenAI-compatible servers through the official ``openai`` client (imported on first use).

One backend type serves OpenAI itself and every server that speaks its Chat
Completions API: vLLM, LM Studio, llama.cpp's ``llama-server``. ``preset`` only
changes the default ``base_url``. The client, availability, listing and error
translation are ``RemoteAPIBackend``'s; this module maps requests and reads the stream.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.images import ImageLimits
from ..errors import ConfigError, GenerationError
from ..secrets import redact
from . import _vision
from ._http_cancel import CancelResponse
from ._image_content import image_refusal, openai_content
from ._openai_wire import (
    PASS_THROUGH,
    options_params,
    reasoning_text,
    response_format,
    think_params,
    thinking_tokens,
)
from ._remote_api import RemoteAPIBackend, RemoteAPISettings, SDKErrors, api_message, status_code
from .base import Delta, Started, Thinking, Usage
from .capabilities import Capabilities

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletionChunk
    from openai.types.completion_usage import CompletionUsage

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


@dataclass(frozen=True)
class OpenAISettings(RemoteAPISettings):
    #: ``openai``, ``vllm``, ``lmstudio`` or ``llamacpp``: picks the default base URL.
    preset: str | None = None
    #: Ask for token usage in streams (``stream_options.include_usage``); old servers may refuse.
    include_usage: bool = True
    #: Models to offer when the server cannot list them.
    models: list[str] = field(default_factory=list)
    #: The models that read images (names or globs such as ``"*-vl-*"``); set, it is the
    #: whole truth for this server. Unset: the catalog and the model's name decide.
    vision_models: list[str] = field(default_factory=list)


class OpenAIBackend(RemoteAPIBackend["openai.OpenAI"]):
    type_name = "openai"
    #: A server answers several requests at once (a batch sends this many).
    default_concurrency = 8
    display_name = "OpenAI-compatible"
    #: Remote (or self-served) models: nothing to download. Images go as ``image_url``
    #: parts (data URLs) to the models ``model_capabilities`` says see.
    capabilities = Capabilities(
        downloads=False, streaming=True, seed=True, json_schema=True, thinking=True, images=True
    )
    default_image_limits = ImageLimits(max_edge=2048)
    extra_options = PASS_THROUGH
    #: Servers without a reasoning parser leave ``<think>…</think>`` in the content.
    think_tags = True
    #: Send a strict copy of the schema (OpenAI's strict mode); see ``_openai_wire``.
    strict_copy: ClassVar[bool] = True
    #: Thinking switched by ``chat_template_kwargs.enable_thinking`` (vLLM's way).
    template_switch: ClassVar[bool] = False
    probe_modules = ("openai", "openai.resources.models", "httpcore", "httpcore2")
    Settings = OpenAISettings
    settings: OpenAISettings
    vendor_host = OPENAI_HOST
    vendor_key_env = "OPENAI_API_KEY"

    def setup(self) -> None:
        preset = self.settings.preset
        if preset is not None and preset not in PRESETS:
            key = f"backends.{self.name}.settings.preset"
            raise ConfigError(
                f"{key}: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}", key=key
            )
        super().setup()
        #: Models the server said read no images (asked no more).
        self._text_only: set[str] = set()

    def _default_base_url(self) -> str:
        """``OPENAI_BASE_URL`` (for the openai type), else the preset's URL."""
        return os.environ.get("OPENAI_BASE_URL") or PRESETS[self.settings.preset or "openai"]

    @property
    def catalog_name(self) -> str | None:
        """OpenAI's own models only where this backend talks to OpenAI."""
        return "openai" if self.is_openai_cloud else None

    @property
    def is_openai_cloud(self) -> bool:
        return self.base_url.startswith(OPENAI_BASE_URL)

    def _needs_key(self) -> bool:
        return self.is_openai_cloud

    def _no_key_message(self) -> str:
        return (
            "no OpenAI API key — set OPENAI_API_KEY or "
            f"backends.{self.name}.settings.api_key (e.g. '${{OPENAI_API_KEY}}')"
        )

    def _unreachable_message(self) -> str:
        return (
            f"cannot reach the OpenAI-compatible server at {self.base_url} — is it running? "
            f"Check backends.{self.name}.settings.base_url"
        )

    def _build_client(self) -> openai.OpenAI:
        import openai

        from ._retry import resending

        return openai.OpenAI(
            base_url=self.base_url,
            api_key=self._api_key_or_placeholder(),
            timeout=openai.Timeout(
                self.settings.read_timeout, connect=self.settings.connect_timeout
            ),
            max_retries=0,
            http_client=resending(openai.DefaultHttpxClient)(),
        )

    def _sdk_errors(self) -> SDKErrors:
        import openai

        return SDKErrors(openai.APIConnectionError, openai.APIStatusError, openai.APIError)

    def _probe_models(self) -> None:
        self.client.with_options(timeout=self.settings.probe_timeout).models.list()

    def _served_models(self) -> list[str]:
        return sorted(m.id for m in self.client.models.list())

    def _unlisted_models(self, exc: Exception) -> list[str] | None:
        """The configured ``models``, when the server answers but cannot list."""
        if self.settings.models and status_code(exc) is not None:
            return list(self.settings.models)
        return None

    def get_backend_info(self) -> BackendInfo:
        return {**super().get_backend_info(), "preset": self.settings.preset}

    def model_capabilities(self, model: str) -> Capabilities:
        """Images for the models that see (``_vision.openai_sees``): ``vision_models``, the
        catalog, the name; an unknown model is text-only on OpenAI's API only."""
        sees = model not in self._text_only and _vision.openai_sees(
            model, self.settings.vision_models, self.catalog_name, official=self.is_openai_cloud
        )
        if sees is False:
            return dataclasses.replace(self.capabilities, images=False)
        return self.capabilities

    def _refused(self, exc: Exception, request: GenerationRequest) -> Exception:
        """A refused image in words of its own, else the common translation."""
        status = status_code(exc)
        message = redact(api_message(exc), self._api_key)
        refusal = _vision.cannot_see(self, request.model)
        error = image_refusal(
            request,
            status,
            message,
            server=redact(self.base_url),
            backend=self.name,
            refusal=refusal,
        )
        if error is refusal:
            self._text_only.add(request.model)
        return error if error is not None else self._translate(exc, request.model)

    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        import openai

        params: dict[str, Any] = {
            "model": request.model,
            "messages": [
                {"role": turn["role"], "content": openai_content(turn, self.image_limits)}
                for turn in request.chat_turns()
            ],
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
        params.update(options_params(request.extra))
        answer_format = response_format(request, adapt=self.strict_copy)
        if answer_format is not None:
            params["response_format"] = answer_format
        params.update(think_params(request.think, template_switch=self.template_switch))
        try:
            chunks: openai.Stream[ChatCompletionChunk] = self.client.chat.completions.create(
                **params
            )
        except openai.APIError as exc:
            raise self._refused(exc, request) from None
        finish_reason: str | None = None
        usage: CompletionUsage | None = None
        cancel = CancelResponse(chunks.response)
        try:
            yield Started(cancel=cancel)
            for chunk in chunks:
                if chunk.usage is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                reasoning = reasoning_text(choice.delta)
                if reasoning:
                    yield Thinking(reasoning)
                content = choice.delta.content if choice.delta is not None else None
                if content:
                    yield content
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        except Exception as exc:  # API errors and the HTTP library's own
            if not cancel.is_set():  # else stream.cancel() shut it: "cancelled", below
                if isinstance(exc, openai.APIError):
                    raise self._translate(exc, request.model, mid_stream=True) from None
                raise
        finally:
            cancel.release()  # the connection may serve another request now
            chunks.close()
        if finish_reason is None and cancel.is_set():
            yield Usage(getattr(usage, "prompt_tokens", None), None, "cancelled")
            return
        if finish_reason is None:
            raise GenerationError(
                f"the stream from {self.base_url} ended before the answer finished; the partial "
                "answer is kept"
            )
        yield Usage(
            getattr(usage, "prompt_tokens", None),
            getattr(usage, "completion_tokens", None),
            finish_reason,
            thinking_tokens=thinking_tokens(usage),
        )


class _ServerPreset(OpenAIBackend):
    """An OpenAI-compatible inference server that also reports its version at ``/version``."""

    default_base_url: str = "http://localhost:8000/v1"
    #: Guided decoding enforces the user's schema as it is; thinking is the template's.
    strict_copy = False
    template_switch = True

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
