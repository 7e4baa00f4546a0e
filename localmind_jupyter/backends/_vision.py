"""Which remote models can see images, decided before anything is sent.

Each remote backend asks here, in this order, and the first answer wins:

- OpenAI-compatible: the ``vision_models`` setting (names or ``fnmatch`` globs, case
  ignored) when it is set, else the catalog's ``vision`` tag, else the name: the families
  that read images (``NAME_HINTS``); on OpenAI's own API a model none of these name is
  text-only, on any other server (vLLM, LM Studio, llama.cpp) it is allowed and the
  server decides.
- Anthropic: the catalog's ``vision`` tag, else the name (every Claude 3 and later sees;
  ``claude-2`` and ``claude-instant`` do not), else allowed.
- Ollama: ``/api/show``'s ``capabilities`` (``vision``), asked by ``ollama.py``; a server
  too old to list them falls back to the catalog here (by name, then by family), else
  the model is allowed.

``None`` means "cannot tell": the backend then does not refuse.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import OptionError
from ._catalog import load_catalog
from ._checks import refuse_unsupported
from ._image_settings import vision_example

if TYPE_CHECKING:
    from .base import BaseBackend

__all__ = [
    "anthropic_sees",
    "cannot_see",
    "carries_images",
    "catalog_sees",
    "matches",
    "ollama_catalog_sees",
    "openai_sees",
]

#: Model families of OpenAI's API and open servers that read images, by name.
NAME_HINTS = re.compile(
    r"gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-4\.5|gpt-5|chatgpt-4o"
    r"|(?:^|[/:_-])o1(?!-mini)(?:$|[-:])|(?:^|[/:_-])o3(?!-mini)(?:$|[-:])|(?:^|[/:_-])o4"
    r"|(?:\d|[/:_.-])vl|vision|llava|pixtral|gemma-?3|smolvlm|idefics|moondream|minicpm-v"
    r"|internvl|molmo"
    r"|phi-?3\.5-vision|phi-?4-multimodal|llama-?4|mistral-small-3\.[12]",
    re.IGNORECASE,
)

#: Claude models before Claude 3 read no images.
_OLD_CLAUDE = re.compile(r"^claude-(?:2|instant|1)", re.IGNORECASE)


def matches(model: str, patterns: Sequence[str]) -> bool:
    """Whether ``model`` is one of ``patterns`` (exact names or ``fnmatch`` globs, any case)."""
    name = model.lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)


def catalog_sees(
    catalog: str | None, model: str, key: Callable[[str], str] = str.lower
) -> bool | None:
    """The catalog's word: True when its entry for ``model`` is tagged ``vision``, False
    when the entry is not, None when the catalog does not list the model."""
    if not catalog:
        return None
    wanted = key(model)
    for entry in load_catalog(catalog):
        if key(entry.name) == wanted:
            return "vision" in entry.tags
    return None


def openai_sees(
    model: str, vision_models: Sequence[str], catalog: str | None, *, official: bool
) -> bool | None:
    """See the module: the setting, the catalog, the name; ``official``: OpenAI's API."""
    if vision_models:
        return matches(model, vision_models)
    listed = catalog_sees(catalog, model)
    if listed is not None:
        return listed
    if NAME_HINTS.search(model):
        return True
    return False if official else None


def anthropic_sees(model: str, catalog: str | None) -> bool | None:
    listed = catalog_sees(catalog, model)
    if listed is not None:
        return listed
    if _OLD_CLAUDE.match(model):
        return False
    return True if model.lower().startswith("claude-") else None


def ollama_catalog_sees(model: str, key: Callable[[str], str]) -> bool | None:
    """For a server that lists no capabilities: the catalog entry of this model, else of
    its family (``llava:13b`` as ``llava:7b``), else None."""
    exact = catalog_sees("ollama", model, key)
    if exact is not None:
        return exact
    family = _family(model)
    tags = [entry.tags for entry in load_catalog("ollama") if _family(entry.name) == family]
    if not tags:
        return None
    return any("vision" in entry_tags for entry_tags in tags)


def _family(name: str) -> str:
    """``library/llava:13b`` -> ``llava``."""
    return name.lower().rsplit("/", 1)[-1].split(":", 1)[0]


def cannot_see(backend: BaseBackend, model: str) -> OptionError:
    """The early refusal's ``OptionError`` for ``model``, also when a server said it first."""
    try:
        refuse_unsupported(
            dataclasses.replace(backend.capabilities, images=False),
            backend.display_name,
            None,
            images=True,
            model=model,
            vision_example=vision_example(backend.catalog_name),
        )
    except OptionError as exc:
        return exc
    raise AssertionError("refuse_unsupported let a text-only model read images")  # pragma: no cover


def carries_images(options: Mapping[str, Any]) -> bool:
    """Whether generation options attach images, new or in history (before parsing)."""
    if _given(options.get("images")):
        return True
    history = options.get("messages")
    return isinstance(history, list) and any(
        isinstance(turn, Mapping) and _given(turn.get("images")) for turn in history
    )


def _given(value: object) -> bool:
    """Some image: a non-empty list, or one bare value (a numpy array has no truth value)."""
    if value is None:
        return False
    return bool(value) if isinstance(value, (list, tuple)) else True
