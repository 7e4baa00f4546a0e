"""What the OpenAI-compatible backend adds to a Chat Completions request, and reads back.

Structured output (``response_format``), reasoning (``reasoning_effort``, vLLM's
``chat_template_kwargs``), the pass-through knobs (``logit_bias``, the penalties), and the
reasoning text servers send beside the answer under names the SDK does not type.
Kept apart from ``openai.py`` so the mapping reads in one place and is tested on the wire.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:
    from ._request import GenerationRequest
    from ._schema import OutputSchema

__all__ = [
    "PASS_THROUGH",
    "options_params",
    "reasoning_text",
    "response_format",
    "strict_schema",
    "think_params",
    "thinking_tokens",
]

#: The backend's own options (``options={...}`` or by name), checked here before sending.
PASS_THROUGH: frozenset[str] = frozenset({"logit_bias", "frequency_penalty", "presence_penalty"})

#: Where servers put the reasoning beside ``content``: vLLM and DeepSeek ``reasoning_content``,
#: llama.cpp's server (and newer vLLM, alongside) ``reasoning``. The first one present wins,
#: so a server that sends both is not read twice.
REASONING_FIELDS: tuple[str, ...] = ("reasoning_content", "reasoning")

_KEYWORDS_WITH_SUBSCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """A copy OpenAI's strict mode takes, or None when strictness would change the meaning.

    Strict mode wants ``additionalProperties: false`` and every property required in each
    object. Adding them only narrows what the schema allows, so an answer to the copy
    still validates against the user's schema. An object open on purpose (an explicit
    ``additionalProperties``, ``patternProperties``, or no ``properties`` at all) cannot be
    closed without refusing what the user allows: then None (sent with ``strict: false``).
    """
    wire = copy.deepcopy(schema)
    return wire if _close(wire) else None


def _close(node: Any) -> bool:
    if isinstance(node, list):
        return all(_close(item) for item in node)
    if not isinstance(node, dict):
        return True
    types = node.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if is_object or "properties" in node:
        extra = node.get("additionalProperties")
        if "patternProperties" in node or extra not in (None, False):
            return False
        if "properties" not in node:
            return False
        node["additionalProperties"] = False
        node["required"] = list(node["properties"])
    children: list[Any] = []
    for key in ("properties", "$defs", "definitions"):
        if isinstance(node.get(key), dict):
            children.extend(node[key].values())
    for key in ("items", "not", "if", "then", "else", *_KEYWORDS_WITH_SUBSCHEMAS):
        if key in node:
            children.append(node[key])
    return all(_close(child) for child in children)


def response_format(request: GenerationRequest, *, adapt: bool) -> dict[str, Any] | None:
    """``schema`` as ``json_schema`` (strict where it can be), ``json_mode`` as ``json_object``.

    ``adapt``: send the strict copy (OpenAI's API); False sends the user's schema as it
    is with ``strict: true`` (vLLM, TensorRT-LLM: their guided decoding enforces any schema).
    """
    schema: OutputSchema | None = request.output_schema
    if schema is not None:
        wire: dict[str, Any] | None = schema.json_schema
        strict = True
        if adapt:
            wire = strict_schema(schema.json_schema)
            strict = wire is not None
        return {
            "type": "json_schema",
            "json_schema": {
                "name": schema.name,
                "schema": wire if wire is not None else schema.json_schema,
                "strict": strict,
            },
        }
    if request.json_mode:
        return {"type": "json_object"}
    return None


def think_params(think: bool | str | None, *, template_switch: bool) -> dict[str, Any]:
    """``think`` for the request: ``reasoning_effort``, and vLLM's template switch.

    OpenAI: a level as it is, True as ``"medium"``, False as ``"none"`` (its newer models'
    "no reasoning"). ``template_switch`` (vLLM, TensorRT-LLM): ``enable_thinking`` in
    ``chat_template_kwargs`` turns a Qwen3-style template's thinking on or off, and False
    sends no ``reasoning_effort`` (those servers take only low/medium/high).
    """
    if think is None:
        return {}
    params: dict[str, Any] = {}
    if think is not False:
        params["reasoning_effort"] = "medium" if think is True else think
    elif not template_switch:
        params["reasoning_effort"] = "none"
    if template_switch:
        params["extra_body"] = {"chat_template_kwargs": {"enable_thinking": think is not False}}
    return params


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def options_params(extra: dict[str, Any]) -> dict[str, Any]:
    """The pass-through options, checked: a bad value is an ``OptionError`` before sending."""
    params: dict[str, Any] = {}
    for name in ("frequency_penalty", "presence_penalty"):
        if name not in extra or extra[name] is None:
            continue
        value = extra[name]
        if not _number(value) or not -2 <= value <= 2:
            raise OptionError(f"{name} must be a number from -2 to 2, got {value!r:.40}")
        params[name] = float(value)
    bias = extra.get("logit_bias")
    if bias is not None:
        params["logit_bias"] = _logit_bias(bias)
    return params


def _logit_bias(bias: Any) -> dict[str, int | float]:
    if not isinstance(bias, dict):
        raise OptionError(
            "logit_bias must be a dict of token ids to biases from -100 to 100, e.g. "
            f"{{'50256': -100}}; got {type(bias).__name__}"
        )
    checked: dict[str, int | float] = {}
    for token, value in bias.items():
        token_id = str(token)
        if isinstance(token, bool) or not token_id.isdigit():
            raise OptionError(
                f"logit_bias keys must be token ids (integers, or strings of digits), got "
                f"{token!r:.40}"
            )
        if not _number(value) or not -100 <= value <= 100:
            raise OptionError(
                f"logit_bias[{token_id}] must be a number from -100 to 100, got {value!r:.40}"
            )
        checked[token_id] = value
    return checked


def reasoning_text(delta: Any) -> str | None:
    """The reasoning in a chunk's delta: a field the SDK does not type, read from its extras."""
    extra = getattr(delta, "model_extra", None)
    if not isinstance(extra, dict):
        return None
    for name in REASONING_FIELDS:
        value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def thinking_tokens(usage: Any) -> int | None:
    """``completion_tokens_details.reasoning_tokens``, where the server counts them."""
    details = getattr(usage, "completion_tokens_details", None)
    count = getattr(details, "reasoning_tokens", None)
    return count if isinstance(count, int) and not isinstance(count, bool) else None
