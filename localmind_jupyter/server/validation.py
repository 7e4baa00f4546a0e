"""Request bodies and model names checked before anything reaches a backend.

A model name travels into URLs, cache folders and file lookups of the backends, so
a name with path syntax (``..``, a leading ``/``, ``\\``) or control characters is
refused here, with a message that says what a valid name looks like.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backends._checks import MAX_MODEL_NAME, check_generic_name
from ..errors import ModelNameError
from .errors import ApiError

if TYPE_CHECKING:
    from ..backends.base import BaseBackend


def check_model_name(model: Any, backend: BaseBackend | None, field_name: str = "model") -> str:
    """The model name, stripped; ApiError 400 when it is not one the backend could know.

    The checks every name gets over HTTP are here (no file paths); the name's grammar is
    the backend's own (``validate_model_name``). ``backend`` None: the generic check only.
    """
    if not isinstance(model, str):
        raise ApiError(400, f"'{field_name}' must be a string, e.g. \"llama3.2:1b\"")
    name = model.strip()
    if not name:
        raise ApiError(400, f"'{field_name}' is empty; name a model, e.g. \"llama3.2:1b\"")
    if len(name) > MAX_MODEL_NAME:
        raise ApiError(400, f"'{field_name}' is longer than {MAX_MODEL_NAME} characters")
    for char in name:
        if unicodedata.category(char).startswith("C"):
            raise ApiError(
                400,
                f"'{field_name}' contains the control character U+{ord(char):04X}; remove it",
            )
    if "\\" in name or name.startswith(("/", "~")) or "//" in name or ".." in name:
        raise ApiError(
            400,
            f"'{field_name}' looks like a file path ({name!r}); model names may not start with "
            "'/' or '~' nor contain '\\', '//' or '..'",
        )
    if any(part in {".", ""} for part in name.split("/")):
        raise ApiError(400, f"'{field_name}' has an empty or '.' path segment ({name!r})")
    try:
        if backend is None:
            check_generic_name(name, f"'{field_name}'")
        else:
            backend.validate_model_name(name)
    except ModelNameError as exc:
        raise ApiError(400, str(exc)) from None
    return name


def read_json_object(body: bytes, example: str) -> dict[str, Any]:
    """The request body as a JSON object; a 400 that shows an example otherwise."""
    if not body.strip():
        raise ApiError(400, f"the request body is empty; send a JSON object like {example}")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8; send UTF-8 encoded JSON") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}); send a JSON object like {example}",
        ) from None
    except RecursionError:  # the decoder recurses once per nested array or object
        raise ApiError(400, _too_deep_message()) from None
    except ValueError:  # an integer of more than 4300 digits (Python's int parsing limit)
        raise ApiError(
            400, f"the request body holds a number with too many digits to read; {_SHAPE_HINT}"
        ) from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise ApiError(400, _too_deep_message())
    if not isinstance(data, dict):
        raise ApiError(
            400, f"the request body must be a JSON object like {example}, not {_kind(data)}"
        )
    return data


#: No field needs more (a ``format`` JSON schema nests a few levels); deeper is refused.
MAX_DEPTH = 32
_SHAPE_HINT = 'options are strings, numbers or lists of strings, e.g. "stop": ["\\n\\n", "END"]'


def _too_deep_message() -> str:
    return (
        f"the request body nests arrays or objects more than {MAX_DEPTH} levels deep; "
        f"flatten it: {_SHAPE_HINT}"
    )


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/dicts deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"'{key}' must be a string, not {_kind(value)}")
    return value


@dataclass(frozen=True)
class DownloadRequest:
    #: None: the backend that claims the name (as ``%localmind pull NAME``).
    backend: str | None
    model: Any  # checked against the backend's type once the backend is known


DOWNLOAD_EXAMPLE = '{"model": "llama3.2:1b", "backend": "NAME"}'
_DOWNLOAD_FIELDS = frozenset({"model", "backend"})


def parse_download(body: bytes) -> DownloadRequest:
    """``{"model", "backend"?}``; without ``backend``, the one that claims the name."""
    data = read_json_object(body, DOWNLOAD_EXAMPLE)
    unknown = sorted(set(data) - _DOWNLOAD_FIELDS)
    if unknown:
        raise ApiError(
            400, f"unknown field(s) {', '.join(unknown)}; a download takes 'model' and 'backend'"
        )
    if "model" not in data:
        raise ApiError(400, f"'model' is missing; send {DOWNLOAD_EXAMPLE}")
    backend = _optional_str(data, "backend") or None
    return DownloadRequest(backend=backend, model=data["model"])


GENERATE_EXAMPLE = '{"prompt": "Hello", "model": "llama3.2:1b", "backend": "NAME"}'
_GENERATE_FIELDS = frozenset({"prompt", "model", "backend"})


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    model: Any
    backend: str | None
    options: dict[str, Any] = field(default_factory=dict)


def parse_generate(body: bytes) -> GenerateRequest:
    """``{"prompt", "model", "backend"?, options...}``; the backend validates the options."""
    data = read_json_object(body, GENERATE_EXAMPLE)
    if "prompt" not in data:
        raise ApiError(400, f"'prompt' is missing; send {GENERATE_EXAMPLE}")
    prompt = data["prompt"]
    if not isinstance(prompt, str):
        raise ApiError(400, f"'prompt' must be a string, not {_kind(prompt)}")
    if "model" not in data or data["model"] is None:
        raise ApiError(
            400,
            f'\'model\' is missing; send {GENERATE_EXAMPLE} (or "model": "backend:model")',
        )
    options = {k: v for k, v in data.items() if k not in _GENERATE_FIELDS}
    check_structured(options)
    return GenerateRequest(
        prompt=prompt, model=data["model"], backend=_optional_str(data, "backend"), options=options
    )


_THINK = ("low", "medium", "high")


def check_structured(options: dict[str, Any]) -> None:
    """``schema``, ``json_mode``, ``think``, ``options``: their JSON types, with a 400 that
    shows one; what a schema may say and which options a backend takes, the backend checks."""
    schema = options.get("schema")
    if "schema" in options and not isinstance(schema, dict):
        raise ApiError(
            400,
            f"'schema' must be a JSON Schema object, not {_kind(schema)}, e.g. "
            '"schema": {"type": "object", "properties": {"capital": {"type": "string"}}}',
        )
    if "json_mode" in options and not isinstance(options["json_mode"], bool):
        raise ApiError(400, f"'json_mode' must be true or false, not {_kind(options['json_mode'])}")
    think = options.get("think")
    if "think" in options and not (isinstance(think, bool) or think in _THINK):
        raise ApiError(
            400, f'\'think\' must be true, false, "low", "medium" or "high", not {think!r:.40}'
        )
    if "options" in options and not isinstance(options["options"], dict):
        raise ApiError(
            400,
            f"'options' must be an object of backend option names to values, not "
            f'{_kind(options["options"])}, e.g. "options": {{"num_ctx": 4096}}',
        )
