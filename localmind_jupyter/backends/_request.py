"""One typed generation request, validated once by pydantic for every backend.

Imported on the first generation, not at start-up (pydantic costs import time). Each
rule raises the one-line message a notebook user reads; ``build`` turns pydantic's
report into that ``OptionError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, InstanceOf, ValidationError, field_validator

from ..core.images import ImageError, ImageInput, is_image_value, to_image
from ..errors import OptionError
from ._schema import OutputSchema, output_schema

#: Options every backend understands, mapped to each backend's own names.
COMMON_OPTIONS: frozenset[str] = frozenset(
    {
        "system",
        "messages",
        "temperature",
        "max_tokens",
        "top_p",
        "seed",
        "stop",
        "schema",
        "json_mode",
        "think",
        "images",
        "options",
    }
)

#: ``think``'s levels, besides True and False (Ollama's, OpenAI's ``reasoning_effort``).
THINK_LEVELS: tuple[str, ...] = ("low", "medium", "high")

#: The largest seed: every engine takes 0..2**31-1 as it is (llama.cpp's seed is a uint32
#: whose 0xFFFFFFFF means "random", Ollama's a Go int, torch's an int64, OpenAI's an integer).
MAX_SEED = 2**31 - 1

_ROLES = frozenset({"system", "user", "assistant"})


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


class GenerationRequest(BaseModel):
    """What to generate: the prompt, the conversation and the backend-neutral options.

    A backend maps these fields to its engine's names; ``extra`` holds the options only
    it knows (listed in its ``extra_options``), which it validates itself.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, validate_default=False)

    prompt: str = ""
    model: str = ""
    system: str | None = None
    #: Earlier turns: ``role`` and ``content``, and on user turns maybe ``images``.
    messages: list[dict[str, Any]] = []
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = []
    #: Structured output: the answer must validate against it (``ModelResponse.parsed``).
    #: (The option is ``schema``; pydantic's ``BaseModel`` has a ``schema`` of its own.)
    output_schema: OutputSchema | None = None
    #: Any JSON object, where the engine has such a mode (Ollama ``format: json``).
    json_mode: bool = False
    #: Reasoning: on, off, or a level; None leaves it to the model.
    think: bool | str | None = None
    #: Images on the new user turn; a ``[image N]`` marker in the prompt says where each
    #: stood (``_image_parts.user_parts``).
    images: list[InstanceOf[ImageInput]] = []
    extra: dict[str, Any] = {}

    @classmethod
    def build(
        cls,
        prompt: Any,
        model: str,
        options: Mapping[str, Any],
        extra_allowed: frozenset[str] = frozenset(),
    ) -> GenerationRequest:
        """Validate keyword options so a typo or a bad value fails loudly, not silently."""
        unknown = set(options) - COMMON_OPTIONS - extra_allowed
        if unknown:
            supported = ", ".join(sorted(COMMON_OPTIONS | extra_allowed))
            raise OptionError(
                f"unknown option(s) {', '.join(sorted(unknown))}; supported options are: "
                f"{supported}"
            )
        fields = {k: v for k, v in options.items() if k in COMMON_OPTIONS and v is not None}
        for empty in ("messages", "images"):
            if not fields.get(empty, True):
                del fields[empty]  # an empty value means none, as before
        extra = {k: v for k, v in options.items() if k in extra_allowed}
        extra.update(_passthrough(fields.pop("options", None), extra, extra_allowed))
        if "schema" in fields:
            fields["output_schema"] = fields.pop("schema")
        try:
            return cls(prompt=prompt, model=model, extra=extra, **fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            error = (first.get("ctx") or {}).get("error")
            if isinstance(error, ImageError):
                raise error from None  # its own type: front ends tell image faults apart
            raise OptionError(str(error) if error is not None else first["msg"]) from None

    def chat_messages(self, prompt: str | None = None) -> list[dict[str, str]]:
        """System prompt, earlier turns, then the new user turn: text only (images left out)."""
        return [{"role": t["role"], "content": t["content"]} for t in self.chat_turns(prompt)]

    def chat_turns(self, prompt: str | None = None) -> list[dict[str, Any]]:
        """Like ``chat_messages``, with ``images`` (``ImageInput`` list) on the user turns
        that have some, the new one included: what a vision backend sends.
        """
        turns: list[dict[str, Any]] = []
        if self.system:
            turns.append({"role": "system", "content": self.system})
        turns.extend(dict(t) for t in self.messages)
        new: dict[str, Any] = {"role": "user", "content": self.prompt if prompt is None else prompt}
        if self.images:
            new["images"] = list(self.images)
        turns.append(new)
        return turns

    @property
    def has_images(self) -> bool:
        """Whether any turn, earlier or new, carries an image (the model must see)."""
        return bool(self.images) or any(t.get("images") for t in self.messages)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"prompt must be a string, got {type(value).__name__}")
        return value

    @field_validator("system", mode="before")
    @classmethod
    def _system(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("system must be a string")
        return value or None

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("messages must be a list of {'role': ..., 'content': ...} dicts")
        turns: list[dict[str, Any]] = []
        for number, turn in enumerate(value, 1):
            if (
                not isinstance(turn, Mapping)
                or turn.get("role") not in _ROLES
                or not isinstance(turn.get("content"), str)
            ):
                raise ValueError(
                    "each entry of messages must be a dict with role 'system', 'user' or "
                    f"'assistant' and string content; got {turn!r:.80}"
                )
            kept: dict[str, Any] = {"role": turn["role"], "content": turn["content"]}
            if turn.get("images"):
                if turn["role"] != "user":
                    raise ValueError(
                        f"messages[{number - 1}] has images but its role is {turn['role']!r}; "
                        "only user turns carry images"
                    )
                kept["images"] = _images(turn["images"], f"messages[{number - 1}] image")
            turns.append(kept)
        return turns

    @field_validator("images", mode="before")
    @classmethod
    def _image_list(cls, value: Any) -> Any:
        return _images(value, "image")

    @field_validator("temperature", mode="before")
    @classmethod
    def _temperature(cls, value: Any) -> Any:
        if not _number(value):
            raise ValueError(f"temperature must be a number, got {value!r}")
        if not 0 <= value <= 2:
            raise ValueError(f"temperature must be between 0 and 2, got {value}")
        return float(value)

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _max_tokens(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {value!r}")
        return value

    @field_validator("top_p", mode="before")
    @classmethod
    def _top_p(cls, value: Any) -> Any:
        if not _number(value) or not 0 < value <= 1:
            raise ValueError(f"top_p must be a number in (0, 1], got {value!r}")
        return float(value)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise ValueError(
                f"seed must be an integer from 0 to {MAX_SEED} (2**31 - 1), got {_shown(value)}; "
                "pick a seed in that range, e.g. 42"
            )
        return value

    @field_validator("output_schema", mode="before")
    @classmethod
    def _schema(cls, value: Any) -> Any:
        return output_schema(value)

    @field_validator("json_mode", mode="before")
    @classmethod
    def _json_mode(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"json_mode must be True or False, got {value!r:.40}")
        return value

    @field_validator("think", mode="before")
    @classmethod
    def _think(cls, value: Any) -> Any:
        if isinstance(value, bool) or value in THINK_LEVELS:
            return value
        raise ValueError(f"think must be True, False, 'low', 'medium' or 'high', got {value!r:.40}")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, (list, tuple)) or not all(isinstance(s, str) and s for s in stops):
            raise ValueError("stop must be a non-empty string or a list of non-empty strings")
        return list(stops)


def _images(value: Any, what: str) -> list[ImageInput]:
    """Each value read once (``ImageError`` names it: ``image 2``); one image may come bare."""
    if is_image_value(value) and not isinstance(value, (list, tuple)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(
            f"images must be a list of images (PIL images, figures, arrays, bytes, paths), "
            f"got {type(value).__name__}"
        )
    images: list[ImageInput] = []
    for number, item in enumerate(value, 1):
        if isinstance(item, str):  # from JSON (REST) or a slip: never a file read behind it
            raise ImageError(
                f"{what} {number} is text, not an image; to attach a file pass "
                "pathlib.Path('chart.png') (text is never read as a path)"
            )
        images.append(to_image(item, f"{what} {number}"))
    return images


def _passthrough(
    given: Any, explicit: Mapping[str, Any], allowed: frozenset[str]
) -> dict[str, Any]:
    """``options={...}``: the backend's own knobs, by the names it declares it takes."""
    if given is None:
        return {}
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise OptionError(f"options must be a dict of option names to values, got {given!r:.60}")
    unknown = sorted(set(given) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise OptionError(
            f"unknown backend option(s) {', '.join(unknown)}; this backend takes: {takes}"
        )
    twice = sorted(set(given) & set(explicit))
    if twice:
        raise OptionError(f"option(s) {', '.join(twice)} given twice, in options and by name")
    return dict(given)


def _shown(value: Any) -> str:
    """A short repr: an integer too long to print (str() refuses > 4300 digits) by its size."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return f"{value!r:.40}"
