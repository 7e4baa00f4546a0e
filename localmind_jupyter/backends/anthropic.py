"""Anthropic's Claude models through the official ``anthropic`` client (imported on first use).

The Messages API differs from OpenAI's Chat Completions in ways this backend hides:
the system prompt is a top-level ``system`` field, ``max_tokens`` is required (the
``max_tokens`` setting gives the default), stop strings are ``stop_sequences``, and
``seed`` does not exist, so asking for one is an ``OptionError`` rather than silence.
``schema``, ``json_mode`` and ``think`` map as ``_anthropic_params`` says (structured
outputs, a forced tool, extended thinking); thinking blocks stream as ``Thinking``.
The client, availability, listing and error translation are ``RemoteAPIBackend``'s.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.images import ImageLimits
from ..errors import GenerationError, OptionError
from ..secrets import redact
from . import _anthropic_params as structured
from . import _vision
from ._http_cancel import CancelResponse
from ._image_content import anthropic_content, image_refusal
from ._remote_api import RemoteAPIBackend, RemoteAPISettings, SDKErrors, api_message, status_code
from .base import Delta, Started, Thinking, Usage
from .capabilities import Capabilities

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import MessageDeltaUsage, RawMessageStreamEvent
    from anthropic.types import Usage as APIUsage

    from ._request import GenerationRequest

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_HOST = "api.anthropic.com"

#: The API's ``stop_reason`` in the words every backend uses; others pass through as they are.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    # The only tool this backend offers is the forced one whose input is the answer.
    "tool_use": "stop",
}


@dataclass(frozen=True)
class AnthropicSettings(RemoteAPISettings):
    #: The API requires ``max_tokens``: used when a generation does not give one.
    max_tokens: int = 1024


class AnthropicBackend(RemoteAPIBackend["anthropic.Anthropic"]):
    type_name = "anthropic"
    #: A server answers several requests at once (a batch sends this many).
    default_concurrency = 4
    display_name = "Anthropic"
    #: Remote models; the Messages API has no seed, so ``seed`` is refused, not dropped.
    #: Structured outputs and extended thinking: a model without them answers HTTP 400.
    #: Images go as base64 ``image`` blocks to Claude 3 and later.
    capabilities = Capabilities(
        downloads=False, streaming=True, seed=False, json_schema=True, thinking=True, images=True
    )
    #: The API's advice: a long edge of 1568 px at most (larger is scaled down on its side,
    #: costing time); 5 MiB of base64 per image, which is about 3.9 MB of image.
    default_image_limits = ImageLimits(max_edge=1568, max_bytes=3_900_000)
    probe_modules = ("anthropic", "httpcore", "httpcore2", "opentelemetry.propagate")
    Settings = AnthropicSettings
    settings: AnthropicSettings
    vendor_host = ANTHROPIC_HOST
    vendor_key_env = "ANTHROPIC_API_KEY"
    reporter = "the Anthropic API"
    served_label = " (available: "

    def _default_base_url(self) -> str:
        return os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_BASE_URL

    def _needs_key(self) -> bool:
        """Anthropic's own API requires a key (a server of your own may need none)."""
        return _is_official(self.base_url)

    def _no_key_message(self) -> str:
        return (
            "no Anthropic API key — set ANTHROPIC_API_KEY or "
            f"backends.{self.name}.settings.api_key (e.g. '${{ANTHROPIC_API_KEY}}')"
        )

    def _unreachable_message(self) -> str:
        return (
            f"cannot reach the Anthropic API at {self.base_url} — check the network, or "
            f"backends.{self.name}.settings.base_url"
        )

    def _build_client(self) -> anthropic.Anthropic:
        import anthropic

        from ._retry import resending

        # An explicit key: the SDK then reads no credentials from the environment or its
        # profile files, so what this backend reports is what it uses.
        return anthropic.Anthropic(
            base_url=self.base_url,
            api_key=self._api_key_or_placeholder(),
            timeout=anthropic.Timeout(
                self.settings.read_timeout, connect=self.settings.connect_timeout
            ),
            max_retries=0,
            http_client=resending(anthropic.DefaultHttpxClient)(),
        )

    def _sdk_errors(self) -> SDKErrors:
        import anthropic

        return SDKErrors(anthropic.APIConnectionError, anthropic.APIStatusError, anthropic.APIError)

    def _probe_models(self) -> None:
        self.client.with_options(timeout=self.settings.probe_timeout).models.list(limit=1)

    def _served_models(self) -> list[str]:
        return [m.id for m in self.client.models.list()]

    def _unlisted_models(self, exc: Exception) -> list[str] | None:
        """No key, API down or refusing to list: the shipped catalog's models."""
        from ._catalog import load_catalog

        return [entry.name for entry in load_catalog(self.type_name)]

    def _no_download_hint(self, model: str) -> str:
        return f"use '{model}' directly with an Anthropic API key"

    def model_capabilities(self, model: str) -> Capabilities:
        """Images for Claude 3 and later (the catalog's ``vision`` tag, else the name)."""
        if _vision.anthropic_sees(model, self.type_name) is False:
            return dataclasses.replace(self.capabilities, images=False)
        return self.capabilities

    def _refused(self, exc: Exception, request: GenerationRequest) -> Exception:
        """A refused image in words of its own, else the common translation."""
        error = image_refusal(
            request,
            status_code(exc),
            redact(api_message(exc), self._api_key),
            server=redact(self.base_url),
            backend=self.name,
            refusal=_vision.cannot_see(self, request.model),
        )
        return error if error is not None else self._translate(exc, request.model)

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
        systems: list[str] = []
        messages: list[dict[str, Any]] = []
        for turn in request.chat_turns():
            if turn["role"] == "system":  # the API takes system text only at the top level
                systems.append(turn["content"])
            else:
                content = anthropic_content(turn, self.image_limits)
                messages.append({"role": turn["role"], "content": content})
        limit = structured.max_tokens(request, self.settings.max_tokens)
        thinking = structured.thinking(request, limit)
        params: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "max_tokens": limit,
            "stream": True,
            **structured.output(request),
        }
        if thinking is not None:
            params["thinking"] = thinking
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
            events: anthropic.Stream[RawMessageStreamEvent] = client.messages.create(**params)
        except anthropic.APIError as exc:
            raise self._refused(exc, request) from None
        usage = Usage()
        finished = False
        json_tool = "tool_choice" in params  # the forced tool's input is the answer
        cancel = CancelResponse(events.response)
        try:
            yield Started(cancel=cancel)
            for event in events:
                if event.type == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        if delta.text:
                            yield delta.text
                    elif delta.type == "thinking_delta":
                        if delta.thinking:
                            yield Thinking(delta.thinking)
                    elif delta.type == "input_json_delta" and json_tool and delta.partial_json:
                        yield delta.partial_json
                    # signature_delta (and citations) carry nothing to show
                elif event.type == "message_start":
                    usage.prompt_tokens = _prompt_tokens(event.message.usage)
                    usage.completion_tokens = _count(event.message.usage, "output_tokens")
                elif event.type == "message_delta":
                    usage.finish_reason = event.delta.stop_reason or usage.finish_reason
                    output_tokens = _count(event.usage, "output_tokens")
                    if output_tokens is not None:
                        usage.completion_tokens = output_tokens
                    usage.thinking_tokens = _thinking_tokens(event.usage, usage.thinking_tokens)
                    if _count(event.usage, "input_tokens") is not None:
                        usage.prompt_tokens = _prompt_tokens(event.usage)
                elif event.type == "message_stop":
                    finished = True
        except Exception as exc:  # noqa: BLE001 - API errors and the HTTP library's own
            if not cancel.is_set():  # else stream.cancel() shut it: "cancelled", below
                raise self._translate(exc, request.model, mid_stream=True) from None
        finally:
            cancel.release()  # the connection may serve another request now
            events.close()  # closes the HTTP response: stopping stops at the source
        if not finished and cancel.is_set():
            usage.finish_reason = "cancelled"
            yield usage
            return
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


def _count(usage: APIUsage | MessageDeltaUsage, name: str) -> int | None:
    """A token count of ``usage``; older SDKs lack some fields, servers may send null."""
    value = getattr(usage, name, None)
    return value if isinstance(value, int) else None


def _thinking_tokens(usage: MessageDeltaUsage, before: int | None) -> int | None:
    """Output tokens spent thinking, where the API breaks them out."""
    details = getattr(usage, "output_tokens_details", None)
    value = getattr(details, "thinking_tokens", None)
    return value if isinstance(value, int) else before


def _prompt_tokens(usage: APIUsage | MessageDeltaUsage) -> int | None:
    """Input tokens, counting those read from or written to the prompt cache too."""
    total = _count(usage, "input_tokens")
    if total is None:
        return None
    for name in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        total += _count(usage, name) or 0
    return total
