"""Stopping an HTTP read that blocks in ``recv``, from the thread that was asked to cancel."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def close_on_cancel(
    response: httpx.Response, cancel: threading.Event, finished: threading.Event
) -> None:
    """Wake the reader blocked in ``recv``: closing from another thread would not."""
    while not finished.is_set():
        if cancel.wait(0.1):
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return
