"""Stopping an HTTP read that blocks in ``recv``, from the thread that was asked to cancel."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


def shut_down(response: httpx.Response | Any) -> None:
    """Shut the response's socket: a reader blocked in ``recv`` wakes with an error or EOF.

    ``response``: an httpx response, or the SDKs' (openai and anthropic may bring their own
    copy of httpx, with the same ``network_stream`` extension)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def close_on_cancel(
    response: httpx.Response, cancel: threading.Event, finished: threading.Event
) -> None:
    """Wake the reader blocked in ``recv``: closing from another thread would not."""
    while not finished.is_set():
        if cancel.wait(0.1):
            shut_down(response)
            return


class CancelResponse(threading.Event):
    """``Started.cancel`` of a streamed HTTP answer: ``ResponseStream.cancel()`` sets it from
    any thread, which shuts the connection at once, even while the server sends nothing
    (a batch's Cancel reaches the rows in flight). No watcher thread: ``set`` does it.

    The backend calls ``release()`` once it has read the answer: the connection then goes
    back to the pool and may carry another request, which a late cancel (a front end
    tidying up after the answer) must not cut."""

    def __init__(self, response: httpx.Response | Any) -> None:
        super().__init__()
        self._response: httpx.Response | Any = response
        self._guard = threading.Lock()

    def set(self) -> None:
        with self._guard:
            super().set()
            if self._response is not None:
                shut_down(self._response)

    def release(self) -> None:
        """The answer was read: from now on a cancel only marks the event."""
        with self._guard:
            self._response = None
