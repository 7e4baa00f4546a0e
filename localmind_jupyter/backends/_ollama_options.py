"""Ollama's own generation options (``keep_alive``, ``format``, ``num_ctx``), checked
before sending, and the common structured-output options that ``format`` would clash with.

Ollama refuses a bad value with an HTTP 400 whose text names Go types
("Unsupported type: 'bool'"); checking here gives an ``OptionError`` that says
what to write instead, and no request is sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:
    from ._request import GenerationRequest

# Go's time.ParseDuration: one or more <number><unit>, an optional sign, or a bare "0".
_DURATION = re.compile(r"[-+]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)")

_KEEP_ALIVE_HINT = (
    'keep_alive must be a duration like "5m" or "1h30m", a number of seconds, '
    "0 to unload the model after answering, or -1 to keep it loaded"
)


def _shown(value: Any) -> str:
    return "a boolean" if isinstance(value, bool) else f"{type(value).__name__} {value!r:.40}"


def check_keep_alive(value: Any) -> None:
    """Accept what Ollama's ``api.Duration`` accepts: seconds (number) or a Go duration."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OptionError(f"{_KEEP_ALIVE_HINT}; got {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f"{_KEEP_ALIVE_HINT}; got {value!r}")
    if isinstance(value, str) and not _DURATION.fullmatch(value.strip()):
        raise OptionError(f"{_KEEP_ALIVE_HINT}; got {value!r:.40}")


def check_format(value: Any) -> None:
    """``"json"`` or a JSON schema (an object), as ``/api/chat`` takes them."""
    if value is None or value == "json" or isinstance(value, Mapping):
        return
    raise OptionError(
        'format must be "json" or a JSON schema object, e.g. {"type": "object", '
        f'"properties": {{...}}}}; got {_shown(value)}'
    )


def check_num_ctx(value: Any) -> None:
    """The context window Ollama loads the model with: a positive whole number of tokens."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(
            f"num_ctx must be a positive whole number of tokens, e.g. 8192; got {_shown(value)}"
        )


def check_options(extra: Mapping[str, Any]) -> None:
    """Every Ollama-only option in ``extra`` (the backend's ``extra_options``)."""
    check_keep_alive(extra.get("keep_alive"))
    check_format(extra.get("format"))
    check_num_ctx(extra.get("num_ctx"))


def check_structured(request: GenerationRequest) -> None:
    """``format`` is where Ollama takes a schema: one of the two ways, not both."""
    if request.extra.get("format") is None:
        return
    if request.output_schema is not None or request.json_mode:
        which = "schema" if request.output_schema is not None else "json_mode"
        raise OptionError(
            f"format and {which} both set Ollama's format; give one: {which} "
            "(works on every backend) or format (Ollama only)"
        )
