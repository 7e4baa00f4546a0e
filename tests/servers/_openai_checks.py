"""The loopback OpenAI server's checks of structured output and reasoning fields.

What the real Chat Completions API answers with HTTP 400 for a bad ``response_format``
(strict mode's rules included), ``reasoning_effort``, ``logit_bias`` or penalty, worded as
it words them, so the backend's translation of such answers is tested against the real shape.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_structured"]

#: ``(message, param, code)`` of a 400 answer.
Problem = tuple[str, str | None, str | None]

_FORMATS = ("json_object", "json_schema", "text")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def check_structured(body: dict[str, Any], strict_checked: bool = True) -> Problem | None:
    """``strict_checked``: refuse a ``strict`` schema that breaks strict mode's rules, as
    OpenAI does (vLLM ignores ``strict``: its guided decoding enforces any schema)."""
    for check in (_response_format, _reasoning_effort, _penalties, _logit_bias):
        problem = check(body, strict_checked)
        if problem is not None:
            return problem
    return None


def _response_format(body: dict[str, Any], strict_checked: bool) -> Problem | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in _FORMATS:
        return (
            f"Invalid value: {kind!r}. Supported values are: 'json_object', 'json_schema', "
            "and 'text'.",
            "response_format.type",
            "invalid_value",
        )
    if kind == "json_object":
        said = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        if "json" not in said.lower():
            return (
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                "messages",
                None,
            )
    if kind != "json_schema":
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return (
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        )
    if strict_checked and spec.get("strict") is True:
        why = _not_strict(spec.get("schema"), ())
        if why is not None:
            return (
                f"Invalid schema for response_format '{spec['name']}': {why}",
                "response_format",
                None,
            )
    return None


def _not_strict(node: Any, context: tuple[str, ...]) -> str | None:
    """Strict mode's object rules, checked through the schema as OpenAI does."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            why = _not_strict(item, (*context, str(index)))
            if why is not None:
                return why
        return None
    if not isinstance(node, dict):
        return None
    where = f"In context={context!r}"
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            return f"{where}, 'additionalProperties' is required to be supplied and to be false."
        keys = list(node.get("properties", {}))
        missing = [k for k in keys if k not in (node.get("required") or [])]
        if missing:
            return (
                f"{where}, 'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            for name, child in value.items():
                why = _not_strict(child, (*context, key, name))
                if why is not None:
                    return why
        elif key in ("items", "anyOf", "allOf", "oneOf", "prefixItems"):
            why = _not_strict(value, (*context, key))
            if why is not None:
                return why
    return None


def _reasoning_effort(body: dict[str, Any], _strict: bool) -> Problem | None:
    effort = body.get("reasoning_effort")
    if effort is None or effort in _EFFORTS:
        return None
    return (
        f"Invalid value: {effort!r}. Supported values are: 'none', 'minimal', 'low', 'medium', "
        "'high', and 'xhigh'.",
        "reasoning_effort",
        "invalid_value",
    )


def _penalties(body: dict[str, Any], _strict: bool) -> Problem | None:
    for name in ("frequency_penalty", "presence_penalty"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return (
                f"Invalid type for '{name}': expected a decimal, but got a "
                f"{type(value).__name__} instead.",
                name,
                "invalid_type",
            )
        if not -2 <= value <= 2:
            return (
                f"Invalid '{name}': decimal out of range. Expected a value between -2 and 2, "
                f"but got {value} instead.",
                name,
                "invalid_value",
            )
    return None


def _logit_bias(body: dict[str, Any], _strict: bool) -> Problem | None:
    bias = body.get("logit_bias")
    if bias is None:
        return None
    if not isinstance(bias, dict):
        return ("Invalid type for 'logit_bias': expected an object.", "logit_bias", "invalid_type")
    for token, value in bias.items():
        if not token.isdigit():
            return (
                f"Invalid key in 'logit_bias': {token}. You should only be submitting non-negative "
                "integers.",
                "logit_bias",
                "invalid_value",
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 100:
            return (
                f"Invalid value at 'logit_bias.{token}': expected a value between -100 and 100.",
                "logit_bias",
                "invalid_value",
            )
    return None
