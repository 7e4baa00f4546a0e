"""One quiet resend for a request that met a keep-alive connection the server had closed.

Servers close idle keep-alive connections (llama.cpp's server does after some errors)
while the client's pool still holds them. The next request on such a connection fails
before any byte of an answer arrives: "Server disconnected without sending a response",
a reset or a broken pipe. The server processed nothing, so sending the request once more,
on a fresh connection, is safe even for a POST that starts a generation.

Nothing else is resent: a refused connection (a server that is down says so at once), a
timeout, an error status, a failure on a connection opened for this very request, or one
after the answer began (a generation is never started twice). Used by every HTTP backend:
``httpx`` for Ollama, the SDKs' ``httpx2`` for OpenAI and Anthropic.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, TypeVar

log = logging.getLogger(__name__)

ClientT = TypeVar("ClientT")


class _Watch:
    """The httpcore ``trace`` callback: did this request open a connection, did an answer come?"""

    __slots__ = ("answered", "fresh", "inner")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fresh = False
        self.answered = False

    def __call__(self, name: str, info: dict[str, Any]) -> Any:
        if name.endswith(("connect_tcp.started", "connect_unix_socket.started")):
            self.fresh = True
        elif name.endswith("receive_response_headers.complete"):
            self.answered = True
        return None if self.inner is None else self.inner(name, info)


@functools.cache
def resending(client_class: type[ClientT]) -> type[ClientT]:
    """``client_class`` (an ``httpx`` or ``httpx2`` client) whose ``send`` resends such a
    request once; the SDKs pass their ``DefaultHttpxClient`` to keep their own defaults."""
    lib = _library_of(client_class)
    disconnects = (lib.RemoteProtocolError, lib.ReadError, lib.WriteError)

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        inner = request.extensions.get("trace")
        watch = _Watch(inner)
        request.extensions["trace"] = watch
        try:
            return super(cls, self).send(request, **kwargs)
        except disconnects as exc:
            if (
                watch.fresh
                or watch.answered
                or not isinstance(request.stream, lib.ByteStream)  # a body we cannot replay
                or (
                    isinstance(exc, lib.RemoteProtocolError)
                    and "without sending a response" not in str(exc)
                )
            ):
                raise
            log.debug(
                "%s %s met a closed keep-alive connection (%s); resending once",
                request.method,
                request.url.path,  # not the whole URL: no query string or host in logs
                exc,
            )
        finally:
            _restore(request, inner)
        return super(cls, self).send(request, **kwargs)

    cls: type[ClientT] = type(f"Resending{client_class.__name__}", (client_class,), {"send": send})
    cls.__doc__ = f"{client_class.__name__} that resends once on a closed keep-alive connection."
    return cls


def _library_of(client_class: type) -> Any:
    """The httpx flavour a client class is built on: its exceptions are the ones to catch."""
    for klass in client_class.__mro__:
        root = klass.__module__.partition(".")[0]
        if root in {"httpx", "httpx2"}:
            return sys.modules[root]
    raise TypeError(f"{client_class!r} is not an httpx client class")


def _restore(request: Any, inner: Any) -> None:
    if inner is None:
        request.extensions.pop("trace", None)
    else:
        request.extensions["trace"] = inner
