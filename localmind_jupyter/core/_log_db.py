"""The answer log's SQLite file: opening it safely for many threads and processes.

WAL lets a kernel and a Jupyter server write the same file at once (writers queue on
the busy timeout instead of failing); ``PRAGMA user_version`` numbers the schema so a
later version can migrate it. ``sqlite3`` is imported on first use, not at ``%load_ext``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import LocalMindError

if TYPE_CHECKING:
    import sqlite3

T = TypeVar("T")

#: The schema this code writes; a file with a larger number was made by a newer LocalMind.
SCHEMA_VERSION = 1
#: Milliseconds a writer waits for another process's write to finish before giving up.
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    created REAL NOT NULL,
    source TEXT NOT NULL,
    backend TEXT NOT NULL,
    backend_type TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    messages TEXT NOT NULL,
    options TEXT NOT NULL,
    answer TEXT NOT NULL,
    thinking TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    thinking_tokens INTEGER,
    tokens_approximate INTEGER NOT NULL DEFAULT 0,
    time_to_first_token REAL,
    duration REAL,
    tokens_per_second REAL,
    finish_reason TEXT,
    error TEXT,
    warning TEXT,
    parsed TEXT,
    ok INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_by_key ON answers (key, ok, id);
"""

_FIX = (
    "move the file aside or delete it (a new log is made on the next answer), "
    "or turn the log off with `log: false` in config.yaml"
)


def log_error(path: Path, doing: str, exc: BaseException) -> LocalMindError:
    """One message for every way the file can fail: which file, what went wrong, the fix."""
    text = str(exc) or type(exc).__name__
    if _busy(exc):
        return LocalMindError(
            f"the answer log {path} could not be {doing}: {text} (another process held it "
            f"longer than {BUSY_TIMEOUT_MS // 1000} s); try again, or {_FIX}"
        )
    return LocalMindError(f"the answer log {path} could not be {doing}: {text}; {_FIX}")


def _busy(exc: BaseException) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _contains(haystack: str | None, needle: str) -> bool:
    """Case-insensitive substring test, Unicode included (SQLite's ``lower`` is ASCII-only)."""
    return haystack is not None and needle.casefold() in haystack.casefold()


class LogDatabase:
    """One connection per process behind a lock: every thread of it may read and write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def connection(self, doing: str) -> Iterator[sqlite3.Connection]:
        """The open connection (made, and the schema set up, on first use); any SQLite
        failure becomes a ``LocalMindError`` naming the file and the fix."""
        import sqlite3

        with self._lock:
            try:
                conn = self._open()
                yield conn
            except sqlite3.Error as exc:
                raise log_error(self.path, doing, exc) from None
            except OSError as exc:
                raise log_error(self.path, doing, exc) from None

    def run(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self.connection(doing) as conn:
            return fn(conn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def _connect(self) -> sqlite3.Connection:
        """A new connection in WAL mode with the schema in place (closed again on failure)."""
        import sqlite3

        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, self.path)
            conn.create_function("lm_contains", 2, _contains, deterministic=True)
            conn.row_factory = sqlite3.Row
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        import sqlite3

        self._conn = None  # a forked child never reuses its parent's connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Prompts and answers are private: the file (and SQLite's -wal/-shm, which copy
            # its mode) is the user's alone.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn = self._connect()
                break
            except sqlite3.OperationalError as exc:
                # Two processes opening a fresh file at once: switching it to WAL (or the
                # schema's first write) can be refused at once with "locked", without the
                # busy timeout, when both already read it (SQLite's deadlock guard). Try again.
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))
        self._conn, self._pid = conn, os.getpid()
        return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a fresh file; refuse one made by a newer version."""
    version = _user_version(conn)
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise LocalMindError(
            f"the answer log {path} has schema version {version}, newer than this LocalMind "
            f"knows ({SCHEMA_VERSION}); upgrade localmind-jupyter, or {_FIX}"
        )
    conn.execute("BEGIN IMMEDIATE")  # two processes creating it at once: one does it
    try:
        if _user_version(conn) == 0:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _user_version(conn: sqlite3.Connection) -> int:
    row: Any = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])
