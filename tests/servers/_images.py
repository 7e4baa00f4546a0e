"""Images on the loopback servers: read from each API's wire shape, checked, and described.

The three test servers take images as the real APIs do and refuse malformed ones with the
real APIs' statuses and wording (where a real text could not be confirmed, a plausible one,
said so below):

- Ollama: ``images`` (a list of base64 strings) on a chat message or on ``/api/generate``.
  Bad base64 is a 400 from Go's JSON binding (``illegal base64 data at input byte N``); a
  model without the ``vision`` capability fails in its runner with a 500 ``this model is
  missing data required for image input`` (the runner's ``ErrNoVisionModel``; the status
  is what users report, not read from the source); bytes no decoder knows are a 500
  ``failed to process inputs: image: unknown format`` (Go's ``image.Decode``; plausible).
- OpenAI: ``content`` as a list of ``{"type": "text"}`` / ``{"type": "image_url",
  "image_url": {"url": "data:image/png;base64,...", "detail"?}}`` parts; a text-only model
  answers 400 ``Invalid content type. image_url is only supported by certain models.``.
- Anthropic: ``{"type": "image", "source": {"type": "base64", "media_type": ..., "data":
  ...}}`` blocks; media types png, jpeg, gif and webp only, at most 5 MiB of base64 text
  (what the API measures) and 8000 px a side,
  and the bytes must be what the media type says.

A vision model's answer depends on the image it received (``_image_answer.describe``).

``turns(api, body)`` reads a recorded request body back as ``Turn``s whose parts are text
and ``ReceivedImage``s in the order sent, so tests can check placement and decode sizes.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.servers._image_answer import describe
from tests.servers._json_kind import json_kind

__all__ = [
    "ANTHROPIC_MEDIA_TYPES",
    "ReceivedImage",
    "Turn",
    "anthropic_problem",
    "describe",
    "go_base64",
    "image_reply",
    "last_user",
    "ollama_binding_problem",
    "ollama_runner_problem",
    "openai_problem",
    "sniff",
    "turns",
]

Api = Literal["ollama", "openai", "anthropic"]

ANTHROPIC_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
ANTHROPIC_MAX_BYTES = 5 * 1024 * 1024
ANTHROPIC_MAX_EDGE = 8000
OPENAI_MAX_BYTES = 20 * 1024 * 1024

NO_VISION_OLLAMA = "this model is missing data required for image input"
NO_VISION_OPENAI = "Invalid content type. image_url is only supported by certain models."
_DATA_URL = re.compile(r"data:(image/[a-z0-9.+-]+);base64,(.*)", re.DOTALL)


@dataclass(frozen=True)
class ReceivedImage:
    """One image as a server received it: the decoded bytes and what pillow reads in them."""

    data: bytes
    #: What the bytes are ("png", "jpeg", "gif", "webp"), None when no magic matches.
    format: str | None
    width: int
    height: int
    #: What the request said it is (a data URL's or ``media_type``'s MIME type; Ollama: None).
    declared: str | None = None
    #: OpenAI's ``detail``, when sent.
    detail: str | None = None


@dataclass
class Turn:
    role: str
    #: Text and images in the order the request carried them (Ollama: text, then images).
    parts: list[str | ReceivedImage] = field(default_factory=list)

    @property
    def images(self) -> list[ReceivedImage]:
        return [part for part in self.parts if isinstance(part, ReceivedImage)]

    @property
    def text(self) -> str:
        return "".join(part for part in self.parts if isinstance(part, str))


# --------------------------------------------------------------------------- bytes


def sniff(data: bytes) -> str | None:
    """The format named by the file's magic bytes, as servers check it."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def go_base64(text: str) -> bytes:
    """Decode like Go's ``encoding/json`` decodes a ``[]byte``: standard alphabet, padded;
    ``ValueError("illegal base64 data at input byte N")`` otherwise (Go's own words)."""
    cleaned = text.replace("\r", "").replace("\n", "")
    for index, char in enumerate(cleaned):
        if not (char.isascii() and (char.isalnum() or char in "+/=")):
            raise ValueError(f"illegal base64 data at input byte {index}")
    if len(cleaned) % 4:
        raise ValueError(f"illegal base64 data at input byte {len(cleaned) // 4 * 4}")
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error:
        pad = cleaned.find("=")
        raise ValueError(f"illegal base64 data at input byte {max(pad, 0)}") from None


def _open(data: bytes, declared: str | None = None, detail: str | None = None) -> ReceivedImage:
    """Read the size with pillow; bytes pillow cannot open get size 0×0."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        width = height = 0
    return ReceivedImage(data, sniff(data), width, height, declared, detail)


def image_reply(turn: Turn | None) -> str | None:
    """The answer of a vision model to this (last user) turn, None when it has no image."""
    if turn is None or not turn.images:
        return None
    return describe([image.data for image in turn.images])


# --------------------------------------------------------------------------- reading requests


def turns(api: Api, body: Any) -> list[Turn]:
    """The request's messages as turns of text and decoded images, as the server read them.

    Invalid images (the server refuses those) come back with size 0×0 where they decode,
    and are left out where they do not.
    """
    if not isinstance(body, dict):
        return []
    if api == "ollama" and "messages" not in body:  # /api/generate
        turn = Turn("user", [str(body.get("prompt") or "")])
        turn.parts += [_open(data) for data in _ollama_bytes(body.get("images"))]
        return [turn]
    result: list[Turn] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        turn = Turn(str(message.get("role", "")))
        content = message.get("content")
        if isinstance(content, str):
            turn.parts.append(content)
        elif isinstance(content, list):
            for part in content:
                read = _part(api, part)
                if read is not None:
                    turn.parts.append(read)
        if api == "ollama":
            turn.parts += [_open(data) for data in _ollama_bytes(message.get("images"))]
        result.append(turn)
    return result


def last_user(api: Api, body: Any) -> Turn | None:
    for turn in reversed(turns(api, body)):
        if turn.role.lower() == "user":
            return turn
    return None


def _ollama_bytes(images: Any) -> list[bytes]:
    out = []
    for item in images or []:
        try:
            out.append(go_base64(item))
        except (ValueError, TypeError, AttributeError):
            continue
    return out


def _part(api: Api, part: Any) -> str | ReceivedImage | None:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return None
    if part.get("type") == "text" and isinstance(part.get("text"), str):
        return str(part["text"])
    if api == "openai" and part.get("type") == "image_url":
        spec = part.get("image_url") or {}
        match = _DATA_URL.fullmatch(str(spec.get("url", "")))
        if match is None:
            return None
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except binascii.Error:
            return None
        return _open(data, match.group(1), spec.get("detail"))
    if api == "anthropic" and part.get("type") == "image":
        source = part.get("source") or {}
        try:
            data = base64.b64decode(str(source.get("data", "")), validate=True)
        except binascii.Error:
            return None
        return _open(data, source.get("media_type"))
    return None


# --------------------------------------------------------------------------- checks


def ollama_binding_problem(body: dict[str, Any]) -> str | None:
    """The 400 gin's JSON binding answers for ``images`` that are not base64 strings."""
    lists = [body.get("images")] + [
        m.get("images") for m in body.get("messages") or [] if isinstance(m, dict)
    ]
    for images in lists:
        if images is None:
            continue
        if not isinstance(images, list):
            return (
                f"json: cannot unmarshal {json_kind(images)} into Go struct field "
                "Message.messages.images of type []api.ImageData"
            )
        for item in images:
            if not isinstance(item, str):
                return (
                    f"json: cannot unmarshal {json_kind(item)} into Go struct field "
                    "Message.messages.images of type api.ImageData"
                )
            try:
                go_base64(item)
            except ValueError as exc:
                return str(exc)
    return None


def ollama_runner_problem(body: dict[str, Any], vision: bool, undecodable: bool) -> str | None:
    """The 500 the runner fails with: a text-only model given images, or an image no
    decoder knows (``undecodable``: every image counts as one, a fault for tests)."""
    decoded = _ollama_bytes(body.get("images"))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            decoded += _ollama_bytes(message.get("images"))
    if not decoded:
        return None
    if not vision:
        return NO_VISION_OLLAMA
    if undecodable or any(sniff(data) is None for data in decoded):
        return "failed to process inputs: image: unknown format"
    return None


def openai_problem(
    body: dict[str, Any], vision: bool, undecodable: bool = False
) -> tuple[str, str | None, str | None] | None:
    """(message, param, code) of OpenAI's 400 for the content parts of a body, or None
    (``undecodable``: every image counts as one it cannot read, a fault for tests)."""
    for m_index, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for p_index, part in enumerate(content):
            where = f"messages[{m_index}].content[{p_index}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    return (
                        f"Missing required parameter: '{where}.text'.",
                        f"{where}.text",
                        "missing_required_parameter",
                    )
                continue
            if kind != "image_url":
                return (
                    f"Invalid value: {kind!r}. Supported values are: 'text', 'image_url', "
                    "'input_audio', 'refusal', 'audio', and 'file'.",
                    f"{where}.type",
                    "invalid_value",
                )
            if message.get("role") != "user":
                return (
                    f"Invalid 'messages[{m_index}]'. Image URLs are only allowed for messages "
                    "with role 'user', but this message with role "
                    f"'{message.get('role')}' contains an image URL.",
                    f"messages[{m_index}]",
                    "invalid_value",
                )
            if not vision:
                return NO_VISION_OPENAI, f"messages.[{m_index}].content.[{p_index}].type", None
            problem = _openai_image(part.get("image_url"), f"{where}.image_url", undecodable)
            if problem is not None:
                return problem
    return None


def _openai_image(
    spec: Any, where: str, undecodable: bool
) -> tuple[str, str | None, str | None] | None:
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
        return (f"Missing required parameter: '{where}.url'.", f"{where}.url", None)
    detail = spec.get("detail")
    if detail is not None and detail not in ("auto", "low", "high"):
        return (
            f"Invalid value: {detail!r}. Supported values are: 'auto', 'low', and 'high'.",
            f"{where}.detail",
            "invalid_value",
        )
    match = _DATA_URL.fullmatch(spec["url"])
    data = None
    if match is not None:
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except binascii.Error:
            data = None
    if data is None:
        return (
            f"Invalid '{where}.url'. Expected a base64-encoded data URL with an image MIME "
            "type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got an invalid "
            "value.",
            f"{where}.url",
            "invalid_value",
        )
    if len(data) > OPENAI_MAX_BYTES:
        return ("Image too large: images must be 20 MB or smaller.", None, "image_too_large")
    if undecodable or sniff(data) is None or _open(data).width == 0:
        return (
            "You uploaded an unsupported image. Please make sure your image has of one the "
            "following formats: ['png', 'jpeg', 'gif', 'webp'].",
            None,
            "invalid_image_format",
        )
    return None


def anthropic_problem(
    body: dict[str, Any], vision: bool, model: str = "", undecodable: bool = False
) -> str | None:
    """The ``invalid_request_error`` message Anthropic answers for a body's image blocks
    (``undecodable``: every image counts as one it cannot process, a fault for tests)."""
    for m_index, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for b_index, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "image":
                continue
            where = f"messages.{m_index}.content.{b_index}.image.source"
            if not vision:  # no Claude 3+ model refuses; a plausible word for an old one
                return f"'{model}' does not support image input."
            source = block.get("source")
            kind = source.get("type") if isinstance(source, dict) else None
            if kind != "base64":
                if kind in ("url", "file"):
                    continue
                return (
                    f"{where}: Input tag {kind!r} found using 'type' does not match any of the "
                    "expected tags: 'base64', 'url', 'file'"
                )
            assert isinstance(source, dict)
            media = source.get("media_type")
            if media not in ANTHROPIC_MEDIA_TYPES:
                return (
                    f"{where}.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                    "'image/gif' or 'image/webp'"
                )
            text = str(source.get("data", ""))
            try:
                data = base64.b64decode(text, validate=True)
            except binascii.Error:
                return f"{where}.base64.data: invalid base64 data"
            if len(text) > ANTHROPIC_MAX_BYTES:  # the API measures the base64 text
                return (
                    f"{where}.base64: image exceeds 5 MB maximum: {len(text)} bytes > "
                    f"{ANTHROPIC_MAX_BYTES} bytes"
                )
            actual = sniff(data)
            if actual is None or undecodable:
                return f"{where}.base64.data: Could not process image"
            if f"image/{actual}" != media:
                return (
                    f"{where}.base64.data: The image was specified using the {media} media "
                    f"type, but the image appears to be a image/{actual} image"
                )
            image = _open(data)
            if max(image.width, image.height) > ANTHROPIC_MAX_EDGE:
                return (
                    f"{where}.base64.data: At least one of the image dimensions exceed max "
                    f"allowed size: {ANTHROPIC_MAX_EDGE} pixels"
                )
    return None
