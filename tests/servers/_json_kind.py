"""The JSON kind Go's encoding/json names in an "cannot unmarshal X into ..." error."""

from __future__ import annotations

from typing import Any


def json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
