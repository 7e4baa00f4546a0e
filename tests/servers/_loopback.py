"""What the loopback test servers share: bind 127.0.0.1, serve on a daemon thread, stop."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar


class LoopbackServer:
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
            else:
                self._connections.discard(conn)
