"""A schema's object fields as typed DataFrame columns (``BatchResult.to_pandas()``).

The JSON Schema says each field's type, whether it came from a pydantic class or a dict,
so the columns are typed from it rather than guessed from the values: a column of a batch
where every row failed still has its dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backends._schema import OutputSchema

#: JSON Schema type -> pandas' nullable dtype (failed rows are missing values).
_DTYPES = {"integer": "Int64", "number": "Float64", "boolean": "boolean", "string": "string"}


def field_columns(
    schema: OutputSchema, parsed: list[Any]
) -> Iterator[tuple[str, tuple[list[Any], Any]]]:
    """``(field, (values, dtype))`` per top-level property; nothing for a non-object schema."""
    properties = _properties(schema.json_schema)
    if not properties:
        return
    records = [_as_dict(value) for value in parsed]
    for name, spec in properties.items():
        values = [None if record is None else record.get(name) for record in records]
        resolved = _resolve(spec, schema.json_schema)
        dtype: Any = _dtype(resolved)
        if dtype in {"Int64", "Float64", "boolean", "string"} and not all(
            _fits(v, dtype) for v in values
        ):
            dtype = "object"  # a value of another type: keep it as it is, not coerced
        elif dtype == "category":
            from importlib import import_module

            categories = list(dict.fromkeys(resolved["enum"]))
            if all(v is None or v in categories for v in values):
                dtype = import_module("pandas").CategoricalDtype(categories)
        yield name, (values, dtype)


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    root = _resolve(schema, schema)
    if root.get("type") not in (None, "object"):
        return {}
    properties = root.get("properties")
    return properties if isinstance(properties, dict) else {}


def _resolve(spec: Any, root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (pydantic puts nested models and enums under ``$defs``)."""
    seen = 0
    while isinstance(spec, dict) and isinstance(spec.get("$ref"), str) and seen < 10:
        path = spec["$ref"]
        if not path.startswith("#/"):
            break
        target: Any = root
        for part in path[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            break
        spec, seen = target, seen + 1
    return spec if isinstance(spec, dict) else {}


def _dtype(spec: dict[str, Any]) -> str:
    kinds = spec.get("type")
    if isinstance(kinds, list):  # ["integer", "null"]
        kinds = [k for k in kinds if k != "null"]
        kinds = kinds[0] if len(kinds) == 1 else None
    if kinds is None:
        options = [s for s in spec.get("anyOf", []) if s.get("type") != "null"]
        if len(options) == 1:
            return _dtype(options[0])
        return "object"
    if "enum" in spec and kinds == "string":
        return "category"
    return _DTYPES.get(str(kinds), "object")


def _fits(value: Any, dtype: str) -> bool:
    if value is None:
        return True
    if dtype == "boolean":
        return isinstance(value, bool)
    if dtype == "string":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if dtype == "Int64":
        return isinstance(value, int)
    return isinstance(value, (int, float))


def _as_dict(value: Any) -> dict[str, Any] | None:
    """A parsed object's fields: a pydantic instance's (enums as their values), or the dict."""
    if value is None:
        return None
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        data = dump(mode="json")
        return data if isinstance(data, dict) else None
    return value if isinstance(value, dict) else None
