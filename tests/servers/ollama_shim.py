"""An Ollama-API shim as oai2ollama and vollama are: a little of the Ollama API over /v1.

Measured on the real ones (``../shared/reference/stack-notes.md``): they answer only
``/api/version``, ``/api/tags`` (names only) and ``/api/show`` (fixed values), pass
``/v1/*`` through to an OpenAI-compatible server, and answer everything else — ``/``,
``/api/chat``, ``/api/generate``, ``/api/pull`` — with FastAPI's 404
``{"detail":"Not Found"}``. Standard library only::

    with OpenAITestServer() as upstream, OllamaShimServer(upstream.base_url) as shim:
        ...  # shim.url speaks the shim's subset; shim.url + "/v1" is upstream's API
"""

from __future__ import annotations

import contextlib
import http.client
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.servers._loopback import LoopbackHTTPServer, LoopbackServer

__all__ = ["OllamaShimServer"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class OllamaShimServer(LoopbackServer):
    """The shim on 127.0.0.1; ``upstream`` is the OpenAI-compatible base URL (``…/v1``)."""

    thread_name = "ollama-shim-server"

    def __init__(self, upstream: str, models: list[str] | None = None, port: int = 0) -> None:
        self.upstream = urlsplit(upstream.rstrip("/"))
        self.models = list(models) if models else ["gpt-test"]
        self._init_loopback("127.0.0.1", port)
        self._requests: list[tuple[str, str]] = []

    def _new_httpd(self) -> ThreadingHTTPServer:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        return httpd

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` in arrival order."""
        with self._lock:
            return list(self._requests)


class _HTTPServer(LoopbackHTTPServer):
    """Tracks connections so ``stop()`` cuts idle keep-alive ones too."""

    block_on_close = False
    owner: OllamaShimServer

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._track(request, True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._track(request, False)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    server: _HTTPServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send_json(self, status: int, obj: Any) -> None:
        payload = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        path = urlsplit(self.path).path
        body = self._body()
        with owner._lock:
            owner._requests.append((self.command, path))
        if path.startswith("/v1/"):
            self._pass_through(owner, body)
        elif path == "/api/version" and self.command == "GET":
            self._send_json(200, {"version": "0.5.0"})
        elif path == "/api/tags" and self.command == "GET":
            self._send_json(200, {"models": [{"name": name} for name in owner.models]})
        elif path == "/api/show" and self.command == "POST":
            self._send_json(200, {"modelfile": "", "details": {}, "capabilities": ["completion"]})
        else:
            self._send_json(404, {"detail": "Not Found"})

    def _pass_through(self, owner: OllamaShimServer, body: bytes) -> None:
        """Forward to the upstream and stream its answer back, chunk by chunk."""
        upstream = owner.upstream
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        prefix = upstream.path.removesuffix("/v1")
        try:
            conn.request(self.command, prefix + self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while data := answer.read1(65536):
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    do_GET = do_HEAD = do_POST = _dispatch
