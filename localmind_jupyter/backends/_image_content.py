"""User turns with images as content parts: OpenAI's ``image_url``, Anthropic's ``image`` blocks.

A turn without images keeps its plain string ``content`` (the wire stays as it was). A
turn with images becomes a list of parts in ``user_parts`` order: each image where its
``[image N]`` marker stood, the images no marker names first. Each image is prepared once
per backend limits (``ImageInput.prepared``) and sent inline, base64, never as a URL.

A server's refusal of an image is worded here too (``image_refusal``): a text-only model
(the server says so) is the same ``OptionError`` the early check raises; an image the
server cannot read is a ``GenerationError`` naming the limits to change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, LocalMindError, OptionError
from ._image_parts import user_parts

if TYPE_CHECKING:
    from ..core.images import ImageLimits
    from ._request import GenerationRequest

__all__ = ["anthropic_content", "image_refusal", "openai_content", "text_only_answer"]

#: What servers say when the model reads no images: OpenAI, vLLM, llama.cpp without its
#: projector (``--mmproj``), LM Studio, Anthropic (older models), Ollama's runner.
TEXT_ONLY_PHRASES: tuple[str, ...] = (
    "only supported by certain models",
    "not a multimodal model",
    "does not support image",
    "image input is not supported",
    "mmproj",
    "does not support vision",
    "missing data required for image input",
    "vision is not supported",
)


def openai_content(turn: dict[str, Any], limits: ImageLimits) -> str | list[dict[str, Any]]:
    """The turn's ``content``: its text, or text and ``image_url`` parts (data URLs)."""
    images = turn.get("images")
    if not images:
        return str(turn["content"])
    parts: list[dict[str, Any]] = []
    for part in user_parts(turn["content"], images):
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        else:
            url = part.prepared(limits).data_url()
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def anthropic_content(turn: dict[str, Any], limits: ImageLimits) -> str | list[dict[str, Any]]:
    """The turn's ``content``: its text, or text and base64 ``image`` blocks."""
    images = turn.get("images")
    if not images:
        return str(turn["content"])
    blocks: list[dict[str, Any]] = []
    for part in user_parts(turn["content"], images):
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        else:
            prepared = part.prepared(limits)
            source = {"type": "base64", "media_type": prepared.mime, "data": prepared.base64()}
            blocks.append({"type": "image", "source": source})
    return blocks


def text_only_answer(message: str) -> bool:
    """Whether a server's error says the model reads no images."""
    text = message.lower()
    return any(phrase in text for phrase in TEXT_ONLY_PHRASES)


def image_refusal(
    request: GenerationRequest,
    status: int | None,
    message: str,
    *,
    server: str,
    backend: str,
    refusal: OptionError,
) -> LocalMindError | None:
    """Our error for a server's answer to a request with images, or None (not about them).

    ``message`` is already redacted; ``refusal`` is the early check's ``OptionError`` for
    this model, raised when the server says the model reads no images.
    """
    if not request.has_images or status is None:
        return None
    if status in (400, 422, 500) and text_only_answer(message):
        return refusal
    if status in (400, 413, 422) and "image" in message.lower():
        return GenerationError(
            f"{server} could not read an image of this request (HTTP {status}): {message} — "
            f"send it smaller (backends.{backend}.settings.image_max_edge / image_max_bytes) "
            "or as PNG or JPEG"
        )
    return None
