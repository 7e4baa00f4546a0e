"""One answer as a row of the log and back: what is kept, redacted, and how it is rebuilt.

Every stored text passes through :func:`~localmind_jupyter.secrets.redact` (the keys the
config holds, URL passwords, secret environment values); settings and headers are never
stored at all.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..secrets import redact

if TYPE_CHECKING:
    from ..backends._request import GenerationRequest
    from ..backends._response import ModelResponse

#: The columns a row is written with, in order.
COLUMNS = (
    "key",
    "created",
    "source",
    "backend",
    "backend_type",
    "model",
    "prompt",
    "messages",
    "options",
    "answer",
    "thinking",
    "prompt_tokens",
    "completion_tokens",
    "thinking_tokens",
    "tokens_approximate",
    "time_to_first_token",
    "duration",
    "tokens_per_second",
    "finish_reason",
    "error",
    "warning",
    "parsed",
    "ok",
)
#: Finish reasons whose answer is not the answer to the request (never served from the log).
UNSERVED = frozenset({"error", "cancelled"})


def canonical(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value is the same text in any process."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def request_options(request: GenerationRequest) -> dict[str, Any]:
    """Every option that changes the answer (the schema as its JSON Schema)."""
    schema = request.output_schema
    return {
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "top_p": request.top_p,
        "seed": request.seed,
        "stop": list(request.stop),
        "schema": None if schema is None else schema.json_schema,
        "json_mode": request.json_mode,
        "think": request.think,
        "extra": dict(request.extra),
    }


def logged_turns(request: GenerationRequest, *, key: bool = False) -> list[dict[str, Any]]:
    """The chat turns as logged: each image by its metadata (label, size, format, sha256),
    never its bytes; for the cache ``key`` by its hash alone (a label changes no answer).
    A request without images gives exactly ``chat_messages()`` (old keys still hit).
    """
    turns = request.chat_turns()
    for turn in turns:
        if turn.get("images"):
            turn["images"] = [im.sha256 if key else im.metadata() for im in turn["images"]]
    return turns


def logged_options(request: GenerationRequest) -> dict[str, Any]:
    """The options column: ``request_options`` and, with images, the new turn's metadata."""
    options = request_options(request)
    if request.images:
        options["images"] = [image.metadata() for image in request.images]
    return options


def _text(value: str | None) -> str | None:
    return None if value is None else redact(value)


def _parsed_json(response: ModelResponse | None) -> str | None:
    if response is None or response.parsed is None:
        return None
    dump = getattr(response.parsed, "model_dump", None)
    return canonical(dump(mode="json") if callable(dump) else response.parsed)


def build_row(
    key: str,
    source: str,
    backend_name: str,
    backend_type: str,
    request: GenerationRequest,
    response: ModelResponse | None,
    error: BaseException | None,
) -> tuple[Any, ...]:
    """The row for one ended generation; a failure keeps the partial text it had."""
    error_text = None if error is None else (str(error) or type(error).__name__)
    if response is not None:
        answer, finish = response.text, response.finish_reason
        error_text = error_text or response.error
    else:
        answer, finish = getattr(error, "partial_text", "") or "", "error"
    ok = error_text is None and finish not in UNSERVED
    values: dict[str, Any] = {
        "key": key,
        "created": time.time(),
        "source": source,
        "backend": backend_name,
        "backend_type": backend_type,
        "model": response.model if response is not None and response.model else request.model,
        "prompt": redact(request.prompt),
        "messages": redact(canonical(logged_turns(request))),
        "options": redact(canonical(logged_options(request))),
        "answer": redact(answer),
        "thinking": _text(response.thinking if response is not None else None),
        "prompt_tokens": response.prompt_tokens if response else None,
        "completion_tokens": response.completion_tokens if response else None,
        "thinking_tokens": response.thinking_tokens if response else None,
        "tokens_approximate": int(bool(response and response.tokens_approximate)),
        "time_to_first_token": response.time_to_first_token if response else None,
        "duration": response.duration if response else None,
        "tokens_per_second": response.tokens_per_second if response else None,
        "finish_reason": finish,
        "error": _text(error_text),
        "warning": _text(response.warning if response is not None else None),
        "parsed": _text(_parsed_json(response)),
        "ok": int(ok),
    }
    return tuple(values[c] for c in COLUMNS)


def response_from_row(row: Any, request: GenerationRequest) -> ModelResponse | None:
    """The logged answer as a ``ModelResponse``; ``parsed`` re-validated through the
    request's schema (a pydantic class comes back as an instance). None if it no longer
    validates (the schema changed its class)."""
    from ..backends._response import ModelResponse
    from ..errors import LocalMindError

    response = ModelResponse(
        text=row["answer"],
        model=row["model"],
        backend=row["backend"],
        finish_reason=row["finish_reason"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        time_to_first_token=row["time_to_first_token"],
        duration=row["duration"],
        tokens_per_second=row["tokens_per_second"],
        tokens_approximate=bool(row["tokens_approximate"]),
        thinking=row["thinking"],
        thinking_tokens=row["thinking_tokens"],
        warning=row["warning"],
    )
    if request.output_schema is not None:
        try:
            response.parsed = request.output_schema.parse(response.text)
        except LocalMindError:
            return None
    return response


def entry(row: Any) -> dict[str, Any]:
    """A row as the dict ``entries()`` returns: JSON columns decoded, time as UTC datetime."""
    data = {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row is no dict
    data["time"] = datetime.fromtimestamp(data.pop("created"), tz=timezone.utc)
    for name in ("messages", "options", "parsed"):
        if data[name] is not None:
            with contextlib.suppress(ValueError):  # a row another program wrote: as it is
                data[name] = json.loads(data[name])
    data["tokens_approximate"] = bool(data["tokens_approximate"])
    data["ok"] = bool(data["ok"])
    return data
