"""Ollama's model names: the grammar it parses, when two names are one model, pull phases."""

from __future__ import annotations

import re

from ._checks import check_generic_name
from .capabilities import ModelNameError

# [host[:port]/][namespace/]model[:tag], as Ollama parses names.
_NAME = re.compile(
    r"(?:[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}/)?"
    r"(?:[A-Za-z0-9_][A-Za-z0-9_-]{0,79}/)?"
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,79})?"
)
_HINT = "write name or name:tag, e.g. llama3.2:1b (optionally namespace/name:tag)"


def validate(name: str, type_name: str) -> str:
    check_generic_name(name, spaces=True)  # the grammar's message says more than "whitespace"
    if not _NAME.fullmatch(name):
        raise ModelNameError(f"{name!r} is not a valid {type_name} model name; {_HINT}")
    return name


def key(name: str) -> str:
    """Ollama treats ``llama3.2`` and ``llama3.2:latest`` as one model, case-insensitively."""
    name = name.lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def phase(status: str) -> str:
    """``pulling <digest>`` comes once per layer: all layers are one "downloading" phase."""
    return "downloading" if status.startswith("pulling ") else status
