"""The answer log: every answer, from every front end, in ``LOCALMIND_HOME/log.db``.

It is also the cache: an identical request (same backend, model, messages and options,
see :func:`request_key`) whose logged answer succeeded can be answered from the log,
which is what makes a batch resumable. The loader sets each backend's ``answer_sink`` to
:meth:`AnswerLog.record`; front ends mark what they send with :func:`answer_source`.

Nothing touches the disk until the first answer is recorded (``%load_ext`` stays fast).
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import OptionError
from ._log_db import LogDatabase
from ._log_rows import (
    COLUMNS,
    build_row,
    canonical,
    entry,
    logged_turns,
    request_options,
    response_from_row,
)

if TYPE_CHECKING:
    import sqlite3

    from ..backends._request import GenerationRequest
    from ..backends._response import ModelResponse
    from ..backends.base import BaseBackend
    from ..config import LocalMindConfig

T = TypeVar("T")

__all__ = [
    "SOURCES",
    "AnswerLog",
    "answer_log_for",
    "answer_source",
    "current_source",
    "log_entries",
    "request_key",
]

#: The front ends that mark what they send; ``"python"`` is everything else (the API).
SOURCES = ("magic", "batch", "rest", "compare", "python")

_SOURCE: contextvars.ContextVar[str] = contextvars.ContextVar(
    "localmind_answer_source", default="python"
)


@contextmanager
def answer_source(name: str) -> Iterator[None]:
    """Mark the answers generated inside the block as coming from ``name`` ("magic"…).

    A ``contextvars`` value: it follows the code into ``asyncio`` tasks, but a thread
    starts with a fresh context, so a worker thread must run in a copy of the caller's
    (``ctx = contextvars.copy_context()``, then ``ctx.run(work)`` in the thread) or enter
    ``answer_source`` itself.
    """
    if not isinstance(name, str) or not name.strip():
        raise OptionError(f"an answer source must be a non-empty string, got {name!r:.40}")
    token = _SOURCE.set(name.strip())
    try:
        yield
    finally:
        _SOURCE.reset(token)


def current_source() -> str:
    """The source the answers generated here are logged with (default ``"python"``)."""
    return _SOURCE.get()


def request_key(backend_name: str, request: GenerationRequest) -> str:
    """The cache key of a request: sha256 of canonical JSON of everything that makes the
    answer (backend, model, the full chat messages, each image's sha256, and every
    answer-changing option).
    The same request gives the same key in any process."""
    payload = {
        "backend": backend_name,
        "model": request.model,
        "messages": logged_turns(request, key=True),
        "options": request_options(request),
    }
    return hashlib.sha256(canonical(payload).encode("utf-8")).hexdigest()


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{name} must be a positive integer, got {value!r:.40}")
    return value


class AnswerLog:
    """One log file; safe to share between the threads of a process and between processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = LogDatabase(self.path)

    def __repr__(self) -> str:
        return f"<AnswerLog {str(self.path)!r}>"

    def close(self) -> None:
        self._db.close()

    # --- writing ------------------------------------------------------------------------------
    def record(
        self,
        backend: BaseBackend,
        request: GenerationRequest,
        response: ModelResponse | None,
        error: BaseException | None,
        *,
        source: str | None = None,
    ) -> None:
        """Log one ended generation (an ``AnswerSink``): finished, cancelled or failed.

        ``source``: what sent it; default the current :func:`answer_source`.
        """
        name = getattr(backend, "name", str(backend))
        kind = getattr(backend, "type_name", type(backend).__name__)
        row = build_row(
            request_key(name, request),
            source or current_source(),
            name,
            kind,
            request,
            response,
            error,
        )
        sql = f"INSERT INTO answers ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        try:
            self._db.run("written", lambda conn: conn.execute(sql, row))
        finally:
            from .replay import record_answer  # in record mode, the recording too

            record_answer(backend, request, response, error)

    # --- reading ------------------------------------------------------------------------------
    def cached(self, backend_name: str, request: GenerationRequest) -> ModelResponse | None:
        """The newest successful logged answer to this exact request, else None."""
        if not self._db.exists():
            return None
        key = request_key(backend_name, request)

        def newest(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                f"SELECT {_READ} FROM answers WHERE key = ? AND ok = 1 ORDER BY id DESC LIMIT 1",
                (key,),
            ).fetchone()

        row = self._read(newest)
        return None if row is None else response_from_row(row, request)

    def answered(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` have a successful logged answer (one query for thousands)."""
        wanted = sorted(set(keys))
        if not wanted or not self._db.exists():
            return set()

        def found(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute(
                "SELECT DISTINCT key FROM answers WHERE ok = 1 AND key IN "
                "(SELECT value FROM json_each(?))",
                (canonical(wanted),),
            ).fetchall()
            return {str(r[0]) for r in rows}

        return self._read(found)

    def entries(
        self, limit: int = 20, search: str | None = None, model: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` exchanges, newest first.

        ``search``: a case-insensitive substring of the prompt or the answer; ``model``: a
        model name, or ``backend:model``.
        """
        limit = _positive("limit", limit)
        where, params = [], []
        if search:
            where.append("(lm_contains(prompt, ?) OR lm_contains(answer, ?))")
            params += [str(search), str(search)]
        if model:
            where.append("(model = ? OR backend || ':' || model = ?)")
            params += [str(model), str(model)]
        if not self._db.exists():
            return []
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT id, {_READ} FROM answers {clause} ORDER BY id DESC LIMIT ?"

        def rows(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(sql, (*params, limit)).fetchall()

        return [entry(r) for r in self._read(rows)]

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._db.run("read", fn)


_READ = ", ".join(COLUMNS)
_LOGS: dict[Path, AnswerLog] = {}
_LOGS_LOCK = threading.Lock()


def answer_log_for(config: LocalMindConfig) -> AnswerLog | None:
    """This process's log for ``config`` (one ``AnswerLog`` per file); None with ``log: false``."""
    if not getattr(config, "log", True):
        return None
    from ..paths import log_path

    path = log_path()
    with _LOGS_LOCK:
        log = _LOGS.get(path)
        if log is None:
            # LOCALMIND_HOME moved (tests do, per test): the other files' connections are
            # closed, so they hold no descriptors; one still in use reopens on its next write.
            for other in _LOGS.values():
                other.close()
            log = _LOGS[path] = AnswerLog(path)
        return log


#: ``log_entries()``'s DataFrame columns, in this order.
ENTRY_COLUMNS = (
    "time",
    "source",
    "backend",
    "backend_type",
    "model",
    "prompt",
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
    "messages",
    "options",
    "ok",
    "key",
    "id",
)


def log_entries(limit: int = 20, search: str | None = None, model: str | None = None) -> Any:
    """The answer log's newest ``limit`` exchanges: a pandas DataFrame when pandas is
    installed, else a list of dicts (see :meth:`AnswerLog.entries` for the filters).

    It reads ``LOCALMIND_HOME/log.db`` as it is, also the answers kept before ``log: false``.
    """
    from ..paths import log_path

    path = log_path()
    with _LOGS_LOCK:
        log = _LOGS.get(path) or AnswerLog(path)
    rows = log.entries(limit, search=search, model=model)
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=list(ENTRY_COLUMNS))
