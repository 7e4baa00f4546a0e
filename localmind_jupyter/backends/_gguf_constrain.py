"""What the GGUF backend adds to a llama.cpp call: the JSON grammar and its own sampling knobs.

``schema=`` becomes llama.cpp's grammar, converted from the JSON Schema by llama-cpp-python's
``json_schema_to_gbnf`` (the port of llama.cpp's converter) and handed to the sampler as
``grammar=``: a token that would break the schema is never sampled. It is passed directly
rather than as ``response_format``, because ``response_format`` silently falls back to "any
JSON" when the converter cannot handle a schema; here that is a clear ``OptionError``.
Converting costs time (milliseconds, more for big schemas), so each schema's grammar is
made once and kept, keyed by the schema's JSON (its key order is the order the
properties are written in, so it is kept).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:
    from ._request import GenerationRequest

__all__ = ["EXTRA_OPTIONS", "check_extra", "extra_kwargs", "grammar_for"]

#: llama.cpp's own sampling knobs, passed through ``options={...}`` (``--option KEY=VALUE``).
EXTRA_OPTIONS: frozenset[str] = frozenset({"repeat_penalty", "top_k", "min_p"})

#: Grammars kept, most recently used last (a notebook uses a handful of schemas).
_MAX_GRAMMARS = 32
_grammars: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()
_JSON_KEY = "\x00json"  # json_mode: any JSON value


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_extra(extra: dict[str, Any]) -> None:
    """Each pass-through value in range, or an ``OptionError`` saying what is expected."""
    if "repeat_penalty" in extra:
        value = extra["repeat_penalty"]
        if not _is_number(value) or value <= 0:
            raise OptionError(
                f"repeat_penalty must be a number > 0 (1.0 = off, 1.1 = a light penalty), "
                f"got {value!r:.40}"
            )
    if "top_k" in extra:
        value = extra["top_k"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise OptionError(f"top_k must be an integer >= 0 (0 = off), got {value!r:.40}")
    if "min_p" in extra:
        value = extra["min_p"]
        if not _is_number(value) or not 0 <= value <= 1:
            raise OptionError(f"min_p must be a number from 0 to 1 (0 = off), got {value!r:.40}")


def extra_kwargs(extra: dict[str, Any]) -> dict[str, Any]:
    """The pass-through options as llama-cpp-python's keyword arguments (same names)."""
    kwargs: dict[str, Any] = {}
    if "repeat_penalty" in extra:
        kwargs["repeat_penalty"] = float(extra["repeat_penalty"])
    if "top_k" in extra:
        kwargs["top_k"] = int(extra["top_k"])
    if "min_p" in extra:
        kwargs["min_p"] = float(extra["min_p"])
    return kwargs


def grammar_for(request: GenerationRequest) -> Any:
    """The ``LlamaGrammar`` for ``schema``/``json_mode``, or None for free text."""
    if request.output_schema is not None:
        # Not sorted: the grammar writes the properties in the schema's order.
        key = json.dumps(request.output_schema.json_schema)
    elif request.json_mode:
        key = _JSON_KEY
    else:
        return None
    with _lock:
        grammar = _grammars.get(key)
        if grammar is not None:
            _grammars.move_to_end(key)
            return grammar
    grammar = _compile(key)
    with _lock:
        _grammars[key] = grammar
        while len(_grammars) > _MAX_GRAMMARS:
            _grammars.popitem(last=False)
    return grammar


def _compile(key: str) -> Any:
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

    if key == _JSON_KEY:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    try:
        gbnf = json_schema_to_gbnf(key)
    except Exception as exc:  # noqa: BLE001 - the converter asserts, raises Key/ValueError
        raise OptionError(
            f"llama.cpp cannot turn this schema into a grammar ({exc}); simplify it "
            "(no 'not', no remote $ref, patterns as '^...$'), see docs/backends.md"
        ) from None
    return LlamaGrammar.from_string(gbnf, verbose=False)
