"""Structured output and extended thinking in the Messages API's own terms.

- ``schema`` is the API's structured outputs: ``output_config.format`` of type
  ``json_schema``, which constrains the answer's text and works with thinking. The API
  takes only closed objects, so every object schema without ``additionalProperties``
  gets ``false`` (as the SDK's own ``transform_schema`` does); the answer is still
  validated against the user's schema afterwards.
- ``json_mode`` (any JSON object, no schema) is a forced tool whose input is any object:
  its streamed ``input_json_delta`` pieces are the answer. The API refuses a forced tool
  with extended thinking, so that pair is refused here, before sending.
- ``think`` is ``thinking: {"type": "enabled", "budget_tokens": N}``: N is a share of
  ``max_tokens`` by level (low 1/4, medium and True 1/2, high 3/4), at least the API's
  minimum of 1024 and below ``max_tokens``. Without ``max_tokens``, a thinking request asks
  for at least ``THINKING_MAX_TOKENS``; a ``max_tokens`` too small to think in is refused.
  ``think=False`` is ``{"type": "disabled"}``; no ``think`` leaves the model's default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:
    from ._request import GenerationRequest

#: The API's smallest ``budget_tokens``.
MIN_BUDGET = 1024
#: ``max_tokens`` of a thinking request that gives none (the setting, when larger).
THINKING_MAX_TOKENS = 4096
#: Share of ``max_tokens`` the thinking may use, by level.
BUDGET_SHARE: dict[str, float] = {"low": 0.25, "medium": 0.5, "high": 0.75}
#: The forced tool whose input is the answer, for ``json_mode``.
JSON_TOOL = "json_answer"


def thinks(request: GenerationRequest) -> bool:
    return request.think not in (None, False)


def max_tokens(request: GenerationRequest, default: int) -> int:
    """The request's ``max_tokens``, else the setting (raised to think in, when thinking)."""
    if request.max_tokens is not None:
        return request.max_tokens
    return max(default, THINKING_MAX_TOKENS) if thinks(request) else default


def thinking(request: GenerationRequest, limit: int) -> dict[str, Any] | None:
    """The ``thinking`` parameter, or None to leave the model's default alone."""
    if request.think is None:
        return None
    if request.think is False:
        return {"type": "disabled"}
    if limit <= MIN_BUDGET:
        raise OptionError(
            f"thinking on Anthropic needs max_tokens above {MIN_BUDGET} (the smallest thinking "
            f"budget is {MIN_BUDGET} tokens and must be less than max_tokens), got {limit}; "
            f"raise max_tokens (e.g. {THINKING_MAX_TOKENS}) or leave think out"
        )
    if request.temperature is not None and request.temperature != 1:
        raise OptionError(
            "the Anthropic API takes no temperature but 1 with thinking; leave temperature "
            "out or leave think out"
        )
    if request.top_p is not None and request.top_p < 0.95:
        raise OptionError(
            "the Anthropic API takes top_p only from 0.95 to 1 with thinking; leave top_p out "
            "or leave think out"
        )
    level = "medium" if request.think is True else str(request.think)
    budget = max(MIN_BUDGET, int(limit * BUDGET_SHARE[level]))
    return {"type": "enabled", "budget_tokens": min(budget, limit - 1)}


def output(request: GenerationRequest) -> dict[str, Any]:
    """``output_config`` for a schema, or the forced JSON tool for ``json_mode``."""
    if request.output_schema is not None:
        schema = closed_objects(request.output_schema.json_schema)
        return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    if not request.json_mode:
        return {}
    if thinks(request):
        raise OptionError(
            "json_mode on Anthropic is a forced tool call, which the API refuses with "
            "thinking; pass a schema instead (structured outputs work with thinking) or "
            "leave think out"
        )
    tool = {
        "name": JSON_TOOL,
        "description": "Give the answer as one JSON object.",
        "input_schema": {"type": "object"},
    }
    return {"tools": [tool], "tool_choice": {"type": "tool", "name": JSON_TOOL}}


#: Keywords whose value is a schema or a list of schemas (not data, such as ``enum``).
_SUBSCHEMAS: tuple[str, ...] = ("items", "prefixItems", "anyOf", "oneOf", "allOf", "not")
_SUBSCHEMAS += ("contains", "if", "then", "else", "additionalItems")
#: Keywords whose value maps names to schemas.
_NAMED_SUBSCHEMAS = ("properties", "$defs", "definitions", "patternProperties")


def closed_objects(schema: Any) -> Any:
    """A copy with ``additionalProperties: false`` on each object that does not say."""
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = dict(schema)
    for key in _SUBSCHEMAS:
        if key in schema:
            closed[key] = closed_objects(schema[key])
    for key in _NAMED_SUBSCHEMAS:
        if isinstance(schema.get(key), dict):
            closed[key] = {name: closed_objects(sub) for name, sub in schema[key].items()}
    kind = schema.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
    if (is_object or "properties" in schema) and "additionalProperties" not in schema:
        closed["additionalProperties"] = False
    return closed
