"""The prompt of the Transformers backend: the chat template, ``think``, and what it renders.

Reasoning models' templates (Qwen3, SmolLM3...) take ``enable_thinking``; templates that
do not know it ignore it. Some open the trace themselves (the rendered prompt ends with
``<think>``): the answer then starts inside the trace, which the caller must know to split
it. Whether a model can think at all is read from its template's text on disk, so
listing models and checking options never loads one.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OptionError
from . import _embedded, _hub

if TYPE_CHECKING:
    from ._transformers_load import Loaded
    from ._transformers_names import Source

__all__ = ["encode", "template_thinks"]

#: How many prompt tokens are decoded to see whether the template opened a trace.
_TAIL_TOKENS = 8


def encode(
    loaded: Loaded, messages: list[dict[str, str]], think: bool | str | None
) -> tuple[dict[str, Any], bool]:
    """Token ids on the model's device, and whether the prompt opened a ``<think>`` trace.

    Chat template when the tokenizer has one; plain text for base models. ``think`` given
    (a level means on: templates take no level) is passed as ``enable_thinking``.
    """
    tokenizer = loaded.tokenizer
    opened = False
    try:
        if getattr(tokenizer, "chat_template", None):
            extra = {} if think is None else {"enable_thinking": think is not False}
            encoded = tokenizer.apply_chat_template(
                messages,
                add_generation_prompt=True,
                return_dict=True,
                return_tensors="pt",
                **extra,
            )
            tail = tokenizer.decode(encoded["input_ids"][0, -_TAIL_TOKENS:])
            opened = tail.rstrip().endswith("<think>")
        else:
            text = "\n\n".join(m["content"] for m in messages)
            encoded = tokenizer(text, return_tensors="pt")
    except Exception as exc:  # jinja raises its own errors for e.g. role order
        raise OptionError(f"the model's chat template rejected the messages: {exc}") from exc
    # transformers 5 returns a BatchEncoding: a mapping, not a tensor.
    return {k: v.to(loaded.device) for k, v in dict(encoded).items()}, opened


def template_thinks(source: Source, hub_cache: str | None) -> bool:
    """Whether the model's chat template mentions a thinking trace (read from disk, cached)."""
    return _mentions_think(source.kind, source.location, hub_cache)


@functools.lru_cache(maxsize=64)
def _mentions_think(kind: str, location: str, hub_cache: str | None) -> bool:
    template = _template_text(kind, location, hub_cache)
    return template is not None and ("<think>" in template or "enable_thinking" in template)


def _template_text(kind: str, location: str, hub_cache: str | None) -> str | None:
    """``chat_template.jinja``, else ``tokenizer_config.json``'s ``chat_template``; None."""
    if kind == "gguf":
        return None  # the template sits in the file's metadata: not read without a load
    found: list[Path] = []
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        if kind == "hub":
            cached = _hub.cached_file(location, name, hub_cache)
            if cached is not None:
                found.append(Path(cached))
        else:
            folder = _embedded.converted_dir() if kind == "embedded" else Path(location)
            found.append(folder / name)
    for path in found:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        if path.suffix == ".jinja":
            return text
        try:
            template: Any = json.loads(text).get("chat_template")
        except (ValueError, AttributeError):
            continue
        if isinstance(template, str):
            return template
        if isinstance(template, list):  # named templates: [{"name", "template"}]
            return "\n".join(str(t.get("template", "")) for t in template if isinstance(t, dict))
    return None
