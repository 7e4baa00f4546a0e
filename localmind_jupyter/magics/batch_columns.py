"""The columns a ``%%localmind --over DF --into COLUMN`` cell writes into the frame.

Without a schema the answers' texts fill ``COLUMN`` (dtype ``string``). With ``--schema``
each field of the answer object gets its own column, ``COLUMN_field``: prefixed, so a field
called like one of the frame's own columns (``name``, ``text``) never overwrites it. The
dtypes are those of ``BatchResult.to_pandas()`` (typed from the schema, not guessed from
the values, so a column keeps its type when rows failed). A schema whose answer is not an
object (a list, a number) fills ``COLUMN`` with the values. A row without an answer (it
failed, or the batch was stopped first) is a missing value in every column.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..core._batch_columns import field_columns

__all__ = ["column_names", "fill_columns"]

_UNANSWERED = ("error", "cancelled")


def _top_fields(schema: Any) -> list[str]:
    """The answer object's top-level fields, read from the schema before anything is sent."""
    to_json = getattr(schema, "model_json_schema", None)  # a pydantic class
    as_json = to_json() if isinstance(schema, type) and callable(to_json) else schema
    if not isinstance(as_json, Mapping) or as_json.get("type", "object") != "object":
        return []
    properties = as_json.get("properties")
    if not isinstance(properties, Mapping):
        return []
    return [str(name) for name in properties]


def column_names(into: str, schema: Any) -> list[str]:
    """The columns the cell will write, to check them against the template first."""
    fields = _top_fields(schema) if schema is not None else []
    return [f"{into}_{name}" for name in fields] if fields else [into]


def fill_columns(frame: Any, into: str, result: Any) -> list[str]:
    """Write each row's answer into ``frame`` in place; return the columns written."""
    pd: Any = importlib.import_module("pandas")  # installed: the frame is a DataFrame

    answered = [r.finish_reason not in _UNANSWERED for r in result]
    index = frame.index
    if result.schema is None:
        texts = [r.text if ok else None for r, ok in zip(result, answered, strict=True)]
        frame[into] = pd.Series(texts, dtype="string", index=index)
        return [into]
    parsed = [r.parsed if ok else None for r, ok in zip(result, answered, strict=True)]
    written = []
    for name, (values, dtype) in field_columns(result.schema, parsed):
        frame[f"{into}_{name}"] = pd.Series(values, dtype=dtype, index=index)
        written.append(f"{into}_{name}")
    if not written:  # not an object: the values themselves
        frame[into] = pd.Series(parsed, dtype=object, index=index)
        written.append(into)
    return written
