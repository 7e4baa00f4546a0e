"""A bound on generations: a few run at once, a few wait their turn, the rest come back later.

Each running generation holds a thread (and, for a local engine, the machine's cores),
so without a bound fifty requests mean fifty threads fighting over the same CPU. A
waiting request holds no thread: it awaits a future on the event loop, and a finished
generation hands its slot straight to the oldest waiter. When the queue is full too,
the answer is 503 with a ``Retry-After`` estimated from how long generations take.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque

from .errors import ApiError

#: Retry-After when no generation has finished yet to estimate from.
DEFAULT_RETRY_AFTER = 5
MAX_RETRY_AFTER = 300

_CONFIG_HINT = (
    "or raise LocalMindExtension.max_concurrent_generations / max_queued_generations "
    "in jupyter_server_config"
)


class ServerBusy(ApiError):
    """Every slot and every queue place is taken: 503 with ``Retry-After``."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(503, message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class Slot:
    """One admitted generation; ``release()`` may be called from any thread, more than once."""

    def __init__(self, gate: GenerationGate) -> None:
        self._gate = gate
        self._started = time.monotonic()
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._gate._release_soon(time.monotonic() - self._started)


class GenerationGate:
    """At most ``max_running`` generations at once and ``max_waiting`` in line (event loop side)."""

    def __init__(self, max_running: int = 4, max_waiting: int = 16) -> None:
        if max_running < 1 or max_waiting < 0:
            raise ValueError("max_running must be >= 1 and max_waiting >= 0")
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._durations: deque[float] = deque(maxlen=20)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def acquire(self) -> Slot:
        """A slot now, or after the generations ahead; ServerBusy when the queue is full too."""
        self._loop = asyncio.get_running_loop()
        if self._closed:
            raise ApiError(503, "the Jupyter server is shutting down")
        if self._running < self.max_running and not self.waiting:
            self._running += 1
            return Slot(self)
        if self.waiting >= self.max_waiting:
            retry = self.retry_after()
            raise ServerBusy(
                f"the server is busy: {self._running} generations are running and "
                f"{self.waiting} are waiting, the most it allows; retry in {retry} s "
                f"(the Retry-After header), {_CONFIG_HINT}",
                retry,
            )
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(None)  # the slot was handed over just as the client left
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            raise
        return Slot(self)

    def retry_after(self) -> int:
        """Seconds until a queue place is likely free: the average generation's share."""
        if not self._durations:
            return DEFAULT_RETRY_AFTER
        average = sum(self._durations) / len(self._durations)
        ahead = self._running + self.waiting
        return max(1, min(MAX_RETRY_AFTER, math.ceil(average * ahead / self.max_running)))

    def close(self) -> None:
        """Server shutdown: nobody else is admitted; those waiting get a 503 (any thread)."""
        self._closed = True
        loop = self._loop
        if loop is None:
            return
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            self._refuse_waiters()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(self._refuse_waiters)

    def _refuse_waiters(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ApiError(503, "the Jupyter server is shutting down"))
        self._waiters.clear()

    def _release_soon(self, duration: float) -> None:
        """From the generating thread: hand the slot on, on the event loop's thread."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(self._release, duration)

    def _release(self, duration: float | None) -> None:
        if duration is not None:
            self._durations.append(duration)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: ``running`` is unchanged
                return
        self._running = max(0, self._running - 1)
