"""A bounded list of callbacks, for the watchers of downloads and of the download panels.

Every panel a notebook opens subscribes, and a panel that is never closed never
unsubscribes; so a list holds at most ``limit`` callbacks and adding one more drops
the oldest (with a log line), rather than growing for the life of the kernel or
refusing the panel the user just opened. A callback that raises is logged and the
others still run: a broken widget must not break a download.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Listeners(Generic[T]):
    """Callbacks in the order added, each once, at most ``limit`` (oldest dropped)."""

    def __init__(self, limit: int, what: str = "listeners") -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.what = what
        self.dropped = 0
        self._items: list[Callable[[T], None]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, callback: object) -> bool:
        with self._lock:
            return callback in self._items

    def add(self, callback: Callable[[T], None]) -> None:
        with self._lock:
            if callback in self._items:
                return
            self._items.append(callback)
            if len(self._items) <= self.limit:
                return
            oldest = self._items.pop(0)
            self.dropped += 1
        log.warning(
            "more than %d %s: the oldest (%r) no longer gets events; close panels you "
            "no longer use",
            self.limit,
            self.what,
            oldest,
        )

    def remove(self, callback: Callable[[T], None]) -> None:
        with self._lock:
            if callback in self._items:
                self._items.remove(callback)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[Callable[[T], None]]:
        with self._lock:
            return list(self._items)

    def emit(self, event: T) -> None:
        """Call every callback with ``event``, on this thread; failures are logged."""
        for callback in self.snapshot():
            call(callback, event)


def call(callback: Callable[[T], None], event: T) -> None:
    try:
        callback(event)
    except Exception:  # a broken watcher must not break the caller
        log.exception("%r failed", callback)
