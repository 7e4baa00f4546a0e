"""Structured output: the schema a user asks for, and the check of what came back.

A user gives a JSON Schema ``dict`` or a pydantic ``BaseModel`` subclass. Each backend
enforces it natively (a grammar, ``format``, ``response_format``); this module only turns
the user's value into one checked JSON Schema before anything is sent, and validates the
answer afterwards, so ``ModelResponse.parsed`` is the same kind of object everywhere.
Imported on first use: jsonschema and pydantic cost import time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import GenerationError, OptionError

__all__ = ["OutputSchema", "output_schema", "parse_answer"]

#: OpenAI's rule for ``json_schema.name``; the other engines take any name.
_NAME_PATTERN = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class OutputSchema:
    """A checked JSON Schema, and the pydantic class it came from (if any)."""

    json_schema: dict[str, Any] = field(hash=False)
    name: str = "answer"
    model_class: type[Any] | None = None

    def parse(self, text: str) -> Any:
        """The validated answer: an instance of the class, else the ``dict``/``list``."""
        return parse_answer(self, text)


def output_schema(value: Any) -> OutputSchema:
    """Check ``value`` and return it as an ``OutputSchema``; ``OptionError`` says why not."""
    if isinstance(value, OutputSchema):
        return value
    from pydantic import BaseModel

    if isinstance(value, type) and issubclass(value, BaseModel):
        try:
            schema = value.model_json_schema()
        except Exception as exc:  # noqa: BLE001 - pydantic raises several kinds here
            raise OptionError(
                f"schema: the pydantic class {value.__name__} has no JSON Schema: {exc}"
            ) from None
        return OutputSchema(schema, _name(value.__name__), value)
    if isinstance(value, BaseModel):
        raise OptionError(
            f"schema must be a pydantic class, not an instance of it: pass "
            f"{type(value).__name__}, not {type(value).__name__}(...)"
        )
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise OptionError(f"schema: a string schema must be JSON ({exc})") from None
    if not isinstance(value, dict):
        raise OptionError(
            "schema must be a JSON Schema dict or a pydantic BaseModel subclass, "
            f"got {type(value).__name__}"
        )
    _check_json_schema(value)
    return OutputSchema(value, _name(str(value.get("title") or "answer")))


def _check_json_schema(schema: dict[str, Any]) -> None:
    """A schema the engines would choke on fails here, before anything is sent."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        json.dumps(schema)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"schema is not JSON-serialisable: {exc}") from None
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise OptionError(f"schema is not a valid JSON Schema at {where}: {exc.message}") from None


def _name(raw: str) -> str:
    return _NAME_PATTERN.sub("_", raw).strip("_")[:64] or "answer"


def parse_answer(schema: OutputSchema, text: str) -> Any:
    """Validate the answer against the schema; ``GenerationError`` keeps the raw text."""
    if schema.model_class is not None:
        from pydantic import ValidationError

        try:
            return schema.model_class.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the answer"
            raise GenerationError(
                f"the answer does not match {schema.model_class.__name__}: {where}: "
                f"{first['msg']} ({exc.error_count()} error(s)); the raw text is kept",
                text,
            ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenerationError(
            f"the answer is not valid JSON: {exc}; the raw text is kept", text
        ) from None
    from jsonschema import ValidationError as SchemaValidationError
    from jsonschema.validators import validator_for

    validator = validator_for(schema.json_schema)(schema.json_schema)
    try:
        validator.validate(value)
    except SchemaValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the answer"
        raise GenerationError(
            f"the answer does not match the schema at {where}: {exc.message}; the raw text is kept",
            text,
        ) from None
    return value
