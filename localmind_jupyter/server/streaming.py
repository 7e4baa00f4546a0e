"""One generation on its own thread, its pieces handed to the event loop in batches.

Backends stream by blocking iteration, so each generation gets a thread; the event
loop only ever drains a queue. The queue is bounded (a slow client slows the
generation rather than growing memory), and a stop request (a client that went away)
cancels the stream at once, which stops an in-process engine even inside a long prompt
pass; the thread then closes the stream, which releases the backend's source.
``ResponseStream.close()`` is called on the generating thread because a generator
cannot be closed from another thread while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backends.base import ResponseStream

log = logging.getLogger(__name__)

#: ("text", str) | ("thinking", str) | ("done", ModelResponse) | ("error", Exception)
Event = tuple[str, Any]
TERMINAL = frozenset({"done", "error"})


class _Stopped(GeneratorExit):
    """Raised from the trace listener to end a stopped generation's reading: the stream
    takes it as a cancel (a ``GeneratorExit``), so the backend's source is closed at once."""


class GenerationPump:
    """Runs ``open_stream()`` and its iteration on a daemon thread; see the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        open_stream: Callable[[], ResponseStream],
        *,
        max_pending: int = 1024,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        #: Called on the generating thread as it ends (frees the generation's admission slot).
        self._on_end = on_end
        self._open_stream = open_stream
        self._space = threading.Semaphore(max_pending)
        self._lock = threading.Lock()
        self._items: deque[Event] = deque()
        self._signalled = False
        self._ended = False
        self._stop = threading.Event()
        self._stream: ResponseStream | None = None
        self._wake = asyncio.Event()
        #: Resolves with the stream once the backend accepted the request, or with its error.
        self.opened: asyncio.Future[ResponseStream] = loop.create_future()
        # The thread runs in a copy of the creator's context: the answer log reads its source
        # (``answer_source``) from there.
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run,), name="localmind-generate", daemon=True
        )

    # --- event loop side ---------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop the generation now (callable from any thread)."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        self._notify()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def next_events(self) -> list[Event]:
        """Everything that arrived since the last call; [] once stopped or finished."""
        while True:
            with self._lock:
                items = list(self._items)
                self._items.clear()
                self._signalled = False
                ended = self._ended
            if items:
                for _ in items:
                    self._space.release()
                return items
            if ended or self._stop.is_set():
                return []
            # A wake-up scheduled from now on runs after this clear: none is lost.
            self._wake.clear()
            await self._wake.wait()

    # --- generating thread side --------------------------------------------------------------
    def _run(self) -> None:
        try:
            stream = self._open_stream()
        except BaseException as exc:  # noqa: BLE001 - handed to the handler, which maps it
            self._settle(None, exc)
            self._end()
            return
        self._settle(stream, None)
        self._stream = stream
        if self._stop.is_set():
            stream.cancel()  # stopped while the backend was still opening the stream
        stream.on_thinking(self._thinking)
        try:
            completed = True
            for piece in stream:
                if self._stop.is_set() or not self._put(("text", piece)):
                    completed = False
                    break
            if completed and not self._stop.is_set():
                self._put(("done", stream.response))
        except _Stopped:
            pass  # stopped mid-trace: nobody is left to tell
        except Exception as exc:  # noqa: BLE001 - becomes the stream's final error line
            self._put(("error", exc))
        finally:
            try:
                stream.close()  # on this thread: the backend releases its source here
            except Exception:  # a failing close must not leave the handler waiting
                log.exception("closing the generation stream failed")
            finally:
                self._end()

    def _thinking(self, piece: str) -> None:
        """A piece of the trace, queued like text; a stop ends the reading here too (a
        long trace would otherwise be read to its end before the next text piece)."""
        if self._stop.is_set() or not self._put(("thinking", piece)):
            raise _Stopped("the client went away while the model was thinking")

    def _put(self, event: Event) -> bool:
        """Queue an event, waiting for room; False when a stop came while waiting."""
        while not self._space.acquire(timeout=0.1):
            if self._stop.is_set():
                return False
        with self._lock:
            self._items.append(event)
            wake = not self._signalled
            self._signalled = True
        if wake:
            self._notify()
        return True

    def _end(self) -> None:
        with self._lock:
            self._ended = True
        self._notify()
        if self._on_end is not None:
            self._on_end()

    def _settle(self, stream: ResponseStream | None, error: BaseException | None) -> None:
        def settle() -> None:
            if self.opened.done():
                return
            if error is not None:
                self.opened.set_exception(error)
            else:
                self.opened.set_result(stream)  # type: ignore[arg-type]

        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(settle)

    def _notify(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake.set)
