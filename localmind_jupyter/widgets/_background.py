"""One background job at a time, so a button handler returns at once and the kernel stays free.

Probing backends or listing installed models can take seconds (a host that does
not answer waits for its timeout); the widgets hand that work to a daemon thread
and update themselves from it when it is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Called on the job's thread with the result (None after an error) and the error or None.
Done = Callable[[T | None, BaseException | None], None]


class BackgroundJob:
    """Runs ``work`` on a daemon thread and passes its result (or exception) to ``done``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, work: Callable[[], T], done: Done[T]) -> bool:
        """Start unless one is still running (a second click joins the first); True if started."""
        with self._lock:
            if self.running:
                return False
            thread = threading.Thread(
                target=self._run, args=(work, done), name=f"localmind-{self.name}", daemon=True
            )
            self._thread = thread
            thread.start()
        return True

    def _run(self, work: Callable[[], T], done: Done[T]) -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never lost in a thread
            error = exc
        try:
            done(result, error)
        except Exception:  # a broken update must not kill the thread silently
            log.exception("updating the %s widget failed", self.name)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current job ends (for tests and scripts); True if none is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running
