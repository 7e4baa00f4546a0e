"""What the loopback test servers share: bind 127.0.0.1, serve on a daemon thread, stop."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar


class LoopbackHTTPServer(ThreadingHTTPServer):
    """The HTTP server every test server builds on: one daemon thread per connection."""

    daemon_threads = True
    #: Listen backlog. The default, 5, drops the SYNs of a burst (a batch or a comparison
    #: opening 8 connections at once while this accept thread waits for a busy core), and
    #: the client sends them again only after 1 s: a row would start a second late.
    request_queue_size = 128


@dataclass(frozen=True)
class Timing:
    """When one request was served: from its arrival to its handler's end, or to the
    moment the client left (``time.monotonic()`` seconds, comparable with the test's)."""

    method: str
    path: str
    #: The ``model`` of its JSON body, if it named one.
    model: str | None
    start: float
    end: float


class RequestTimings:
    """``timings``: when each request was served (the handlers call ``_note_timing``), so a
    test can see requests overlap. Needs the server's ``_lock``."""

    _lock: threading.Lock
    _timings: list[Timing]

    @property
    def timings(self) -> list[Timing]:
        """Every request served so far, with its start and end, in the order they ended."""
        with self._lock:
            return list(getattr(self, "_timings", ()))

    def _note_timing(self, method: str, path: str, model: Any, start: float) -> None:
        model = model if isinstance(model, str) else None
        with self._lock:
            if not hasattr(self, "_timings"):
                self._timings = []
            self._timings.append(Timing(method, path, model, start, time.monotonic()))


class LoopbackServer(RequestTimings):
    """Subclasses set ``thread_name`` and build their HTTP server in ``_new_httpd``.

    Subclass ``__init__`` must set ``host``, ``port``, ``_lock``, ``_stopping``, ``_httpd``,
    ``_thread`` and ``_connections`` (see ``_init_loopback``).
    """

    thread_name: ClassVar[str] = "test-server"

    def _init_loopback(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        #: Connections accepted so far: a client that reuses its keep-alive connection
        #: opens one for many requests.
        self.connections_opened = 0

    def _new_httpd(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self) -> Any:
        """Bind and serve in a daemon thread; a crashed test never hangs the interpreter."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        httpd = self._new_httpd()
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and stalls, close the socket; idempotent."""
        httpd = self._httpd
        if httpd is None or self._stopping.is_set():
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(conn)
                self.connections_opened += 1
            else:
                self._connections.discard(conn)


def cut(conn: socket.socket, how: str) -> None:
    """Close a connection without answering: ``"reset"`` sends RST (the client's read fails
    with ECONNRESET), anything else a plain FIN (the client reads end of file)."""
    with contextlib.suppress(OSError):
        if how == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        else:
            conn.shutdown(socket.SHUT_RDWR)


class DropsAfterError:
    """Handler mixin for the ``drop_after_error`` fault of the SDK test servers.

    After an answer with an error status the connection stays open (no ``Connection:
    close``), but the next request on it is read and then cut unanswered: what a server
    that closed the keep-alive connection looks like to a client that reuses it. The
    handler's ``do_*`` call ``_handle``; its ``_dispatch`` calls ``_cut_if_doomed``
    once the request is read.
    """

    status = 0
    doomed: str | None = None
    connection: socket.socket
    close_connection: bool
    server: Any

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status = code
        super().send_response(code, message)  # type: ignore[misc]

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError

    #: The ``model`` of the request's body, set by ``_dispatch`` (for ``timings``).
    body_model: Any = None

    def _handle(self, method: str) -> None:
        self.status = 0
        self.body_model = None
        start = time.monotonic()
        try:
            self._dispatch(method)
        finally:
            self.server.owner._note_timing(
                method, getattr(self, "path", ""), self.body_model, start
            )
            fault = self.server.owner.drop_after_error
            if self.status >= 400 and fault:
                self.doomed = fault

    def _cut_if_doomed(self) -> bool:
        if self.doomed is None:
            return False
        self.close_connection = True
        cut(self.connection, self.doomed)
        return True
