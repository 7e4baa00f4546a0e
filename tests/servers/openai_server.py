"""A small OpenAI-compatible HTTP server for offline tests (standard library only).

It speaks enough of the OpenAI REST API (``GET /v1/models``, ``GET /v1/models/{id}``,
``POST /v1/chat/completions`` with and without ``stream``) for the official ``openai``
client to talk to it unchanged, so it can stand in for OpenAI, vLLM, LM Studio or
llama.cpp's server.  Replies are deterministic and a handful of fault knobs let tests
exercise error paths (rate limits, server errors, mid-stream errors, dropped
connections, client disconnects, servers that ignore ``stream_options``).

Usage::

    with OpenAITestServer(models=["gpt-test"], api_key="sk-test-123") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test-123")
        server.token_delay = 0.05

As a process (for benchmarks)::

    python -m tests.servers.openai_server --port 0 --reply-chunks 20000 [--api-key K]

prints the base URL as its first stdout line and serves until killed or until
``--lifetime`` seconds have passed.
"""

from __future__ import annotations

import argparse
import contextlib
import http
import json
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.servers import _images
from tests.servers._faults import PromptFaults
from tests.servers._loopback import DropsAfterError, RequestTimings
from tests.servers._openai_checks import check_structured

__all__ = ["OpenAITestServer", "split_pieces"]

_MODEL_CREATED = 1_700_000_000
_FINGERPRINT = "fp_localtest"
_API_KEYS_URL = "https://platform.openai.com/account/api-keys"

# Fault attributes and their defaults (restored by ``reset_faults``).
_FAULT_DEFAULTS: dict[str, Any] = {
    "token_delay": None,
    "drop_after": None,
    "error_after": None,
    "fail_status": None,
    "include_usage_ignored": False,
    "drop_after_error": None,
    "echo_credentials": False,
    "models_status": None,
    "reasoning_pieces": None,
    "reasoning_field": "reasoning_content",
    "json_reply": None,
    "strict_checked": True,
    "images_undecodable": False,
}

_FAIL_BODIES: dict[int, tuple[str, str, str | None]] = {
    429: (
        "Rate limit reached for requests. Limit: 3 / min. Please try again in 20s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}

#: The request headers that carry keys, recorded apart from ``requests``.
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})

_PIECE_RE = re.compile(r"\s*\S+\s*|\s+")


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into one-word pieces that keep their trailing whitespace.

    ``"".join(split_pieces(text)) == text`` always holds.
    """
    return _PIECE_RE.findall(text)


def _mask_key(key: str) -> str:
    """Mask an API key the way OpenAI does in its 401 message; never the full key."""
    if len(key) >= 13:
        return key[:5] + "*" * (len(key) - 9) + key[-4:]
    return key[: min(5, len(key) // 2)] + "****"


def _error_body(
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _content_text(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return ""


def _apply_stop(pieces: list[str], stops: list[str]) -> tuple[list[str], bool]:
    """Cut ``pieces`` right before the earliest occurrence of any stop string."""
    joined = "".join(pieces)
    found = [i for i in (joined.find(s) for s in stops if s) if i >= 0]
    if not found:
        return pieces, False
    cut = min(found)
    out: list[str] = []
    pos = 0
    for piece in pieces:
        if pos + len(piece) <= cut:
            out.append(piece)
            pos += len(piece)
            continue
        head = piece[: cut - pos]
        if head:
            out.append(head)
        break
    return out, True


class _ClientGoneError(Exception):
    """The client closed the connection while we were writing."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: OpenAITestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients resetting idle keep-alive connections are normal; stay quiet about them.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(DropsAfterError, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OpenAITestServer/1.0"
    server: _HTTPServer

    # -- plumbing -----------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.owner._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._unregister(self.connection)

    def log_message(self, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def _send_error(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if self.server.owner.echo_credentials:  # as careless proxies do
            message += f" (request headers: {dict(self.headers.items())})"
        self._send_json(status, _error_body(message, type_, param, code), headers)

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP/1.1 chunk (chunked transfer encoding), unbuffered."""
        try:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
        except OSError as exc:  # BrokenPipe, ConnectionReset, ConnectionAborted
            raise _ClientGoneError from exc

    def _abort_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- dispatch -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        raw = self._read_body()
        parsed: Any = None
        bad_json = False
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                bad_json = True
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        owner._record(method, self.path, headers, parsed)
        self.body_model = parsed.get("model") if isinstance(parsed, dict) else None
        owner._record_credentials(method, self.path, self.headers)
        if self._cut_if_doomed():
            return

        if not self._check_auth(owner):
            return
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if method == "GET" and path == "/version" and owner.server_version is not None:
            # What vLLM and trtllm-serve answer beside the OpenAI API.
            self._send_json(200, {"version": owner.server_version})
        elif method == "GET" and path == "/v1/models" and owner.models_status is not None:
            # A server that cannot list its models (some llama.cpp builds, proxies).
            status = int(owner.models_status)
            self._send_error(status, http.HTTPStatus(status).phrase + ".")
        elif method == "GET" and path == "/v1/models":
            self._send_json(200, {"object": "list", "data": owner._model_objects()})
        elif method == "GET" and path.startswith("/v1/models/"):
            model_id = unquote(path[len("/v1/models/") :])
            if model_id in owner.models:
                self._send_json(200, owner._model_object(model_id))
            else:
                self._send_error(
                    404,
                    f"The model '{model_id}' does not exist",
                    param="model",
                    code="model_not_found",
                )
        elif method == "POST" and path == "/v1/chat/completions":
            if bad_json or (raw and not isinstance(parsed, dict)):
                self._send_error(
                    400,
                    "We could not parse the JSON body of your request. (HINT: This likely "
                    "means you aren't using your HTTP library correctly. The OpenAI API "
                    "expects a JSON payload, but what was sent was not valid JSON.)",
                )
                return
            self._chat_completions(owner, parsed or {})
        else:
            self._send_error(404, f"Invalid URL ({method} {urlsplit(self.path).path})")

    def _check_auth(self, owner: OpenAITestServer) -> bool:
        if owner.api_key is None:
            return True
        auth = self.headers.get("Authorization")
        if not auth:
            self._send_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). "
                f"You can obtain an API key from {_API_KEYS_URL}.",
            )
            return False
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or token != owner.api_key:
            self._send_error(
                401,
                f"Incorrect API key provided: {_mask_key(token)}. "
                f"You can find your API key at {_API_KEYS_URL}.",
                code="invalid_api_key",
            )
            return False
        return True

    # -- chat completions -----------------------------------------------------------------

    def _validate(self, owner: OpenAITestServer, body: dict[str, Any]) -> bool:
        if "model" not in body or not isinstance(body.get("model"), str):
            self._send_error(400, "you must provide a model parameter")
            return False
        messages = body.get("messages")
        if "messages" not in body:
            self._send_error(
                400,
                "Missing required parameter: 'messages'.",
                param="messages",
                code="missing_required_parameter",
            )
            return False
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            self._send_error(
                400,
                "Invalid type for 'messages': expected an array of objects.",
                param="messages",
                code="invalid_type",
            )
            return False
        if not messages:
            self._send_error(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                param="messages",
                code="empty_array",
            )
            return False
        for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
            value = body.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self._send_error(
                    400,
                    f"Invalid type for '{name}': expected a decimal, but got a "
                    f"{type(value).__name__} instead.",
                    param=name,
                    code="invalid_type",
                )
                return False
            if value < low:
                self._send_error(
                    400,
                    f"Invalid '{name}': decimal below minimum value. Expected a value "
                    f">= {low}, but got {value} instead.",
                    param=name,
                    code="decimal_below_min_value",
                )
                return False
            if value > high:
                self._send_error(
                    400,
                    f"Invalid '{name}': decimal above maximum value. Expected a value "
                    f"<= {high}, but got {value} instead.",
                    param=name,
                    code="decimal_above_max_value",
                )
                return False
        for name in ("max_tokens", "max_completion_tokens"):
            value = body.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                self._send_error(
                    400,
                    f"Invalid type for '{name}': expected an integer, but got a "
                    f"{type(value).__name__} instead.",
                    param=name,
                    code="invalid_type",
                )
                return False
            if value < 1:
                self._send_error(
                    400,
                    f"Invalid '{name}': integer below minimum value. Expected a value "
                    f">= 1, but got {value} instead.",
                    param=name,
                    code="integer_below_min_value",
                )
                return False
        stop = body.get("stop")
        if stop is not None and not (
            isinstance(stop, str)
            or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
        ):
            self._send_error(
                400,
                "Invalid type for 'stop': expected a string or an array of strings.",
                param="stop",
                code="invalid_type",
            )
            return False
        problem = check_structured(body, owner.strict_checked)
        if problem is not None:
            self._send_error(400, problem[0], param=problem[1], code=problem[2])
            return False
        if body["model"] not in owner.models:
            self._send_error(
                404,
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
            return False
        vision = body["model"] not in owner.text_only
        image_problem = _images.openai_problem(body, vision, owner.images_undecodable)
        if image_problem is not None:
            self._send_error(400, image_problem[0], param=image_problem[1], code=image_problem[2])
            return False
        return True

    def _chat_completions(self, owner: OpenAITestServer, body: dict[str, Any]) -> None:
        faults = owner._fault_snapshot()
        if not self._validate(owner, body):
            return
        owner._record_params(body)
        fault = owner._take_fault(body["messages"])
        if fault is not None and fault.kind != "status":
            faults["drop_after" if fault.kind == "drop" else "error_after"] = fault.after
        status = fault.status if fault and fault.kind == "status" else faults["fail_status"]
        if status is not None:
            status = int(status)
            default_type = "server_error" if status >= 500 else "invalid_request_error"
            message, type_, code = _FAIL_BODIES.get(
                status, (http.HTTPStatus(status).phrase + ".", default_type, None)
            )
            after = fault.retry_after if fault else None
            headers = {"retry-after": after} if after is not None else None
            self._send_error(status, message, type_, None, code, headers)
            return

        messages = body["messages"]
        prompt_tokens = sum(len(_content_text(m.get("content")).split()) for m in messages)
        pieces = owner._reply_for(messages)
        if body.get("response_format") is not None and owner.json_reply is not None:
            pieces = split_pieces(owner.json_reply)
        thoughts = list(owner.reasoning_pieces or [])
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        truncated = limit is not None and len(thoughts) + len(pieces) > limit
        if truncated:  # reasoning counts against the limit, as on the real servers
            thoughts = thoughts[:limit]
            pieces = pieces[: limit - len(thoughts)]
        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        pieces, stopped = _apply_stop(pieces, stops)
        finish_reason = "length" if truncated and not stopped else "stop"
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(thoughts) + len(pieces),
            "total_tokens": prompt_tokens + len(thoughts) + len(pieces),
        }
        if thoughts:
            usage["completion_tokens_details"] = {"reasoning_tokens": len(thoughts)}
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        model = body["model"]

        if not body.get("stream"):
            delay = faults["token_delay"]
            if delay and owner._stopping.wait(delay * len(pieces)):
                self._abort_connection()
                return
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": _FINGERPRINT,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "".join(pieces),
                                "refusal": None,
                                **({owner.reasoning_field: "".join(thoughts)} if thoughts else {}),
                            },
                            "logprobs": None,
                            "finish_reason": finish_reason,
                        }
                    ],
                    "usage": usage,
                },
            )
            return

        stream_options = body.get("stream_options") or {}
        include_usage = bool(
            isinstance(stream_options, dict)
            and stream_options.get("include_usage")
            and not faults["include_usage_ignored"]
        )
        self._stream(
            owner,
            faults,
            completion_id,
            created,
            model,
            [(owner.reasoning_field, t) for t in thoughts] + [("content", p) for p in pieces],
            finish_reason,
            usage,
            include_usage,
        )

    def _stream(
        self,
        owner: OpenAITestServer,
        faults: dict[str, Any],
        completion_id: str,
        created: int,
        model: str,
        pieces: list[tuple[str, str]],
        finish_reason: str,
        usage: dict[str, Any],
        include_usage: bool,
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
        self.end_headers()
        owner._stream_started()

        head = json.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": _FINGERPRINT,
            }
        )[:-1]
        usage_null = ', "usage": null' if include_usage else ""

        def choice_event(delta_json: str, finish: str | None) -> bytes:
            finish_json = "null" if finish is None else json.dumps(finish)
            return (
                f'data: {head}, "choices": [{{"index": 0, "delta": {delta_json}, '
                f'"logprobs": null, "finish_reason": {finish_json}}}]{usage_null}}}\n\n'
            ).encode()

        delay = faults["token_delay"]
        drop_after = faults["drop_after"]
        error_after = faults["error_after"]
        try:
            self._write_chunk(
                choice_event('{"role": "assistant", "content": "", "refusal": null}', None)
            )
            for sent, (field, piece) in enumerate(pieces):
                if drop_after is not None and sent >= drop_after:
                    self._abort_connection()
                    return
                if error_after is not None and sent >= error_after:
                    self._send_stream_error()
                    return
                if delay and owner._stopping.wait(delay):
                    self._abort_connection()
                    return
                if owner._stopping.is_set():
                    self._abort_connection()
                    return
                self._write_chunk(choice_event(json.dumps({field: piece}), None))
                owner._chunk_sent()
            if drop_after is not None and len(pieces) >= drop_after:
                self._abort_connection()
                return
            if error_after is not None and len(pieces) >= error_after:
                self._send_stream_error()
                return
            self._write_chunk(choice_event("{}", finish_reason))
            if include_usage:
                self._write_chunk(
                    f'data: {head}, "choices": [], "usage": {json.dumps(usage)}}}\n\n'.encode()
                )
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")  # terminating zero-length chunk
        except _ClientGoneError:
            self.close_connection = True
            owner._client_disconnected()

    def _send_stream_error(self) -> None:
        event = {
            "error": {
                "message": "The server had an error while processing your request. "
                "Sorry about that!",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._write_chunk(b"")


class OpenAITestServer(PromptFaults, RequestTimings):
    """OpenAI-compatible test server on 127.0.0.1 (free port unless ``port`` is given).

    Deterministic replies: ``"You said: " + <last user message>`` split into one-word
    pieces (see :func:`split_pieces`), unless :attr:`reply_pieces` is set.

    Fault attributes (read once at the start of each chat completion request):

    - ``token_delay``: seconds to sleep before each content chunk (non-stream: the
      total ``token_delay * pieces`` before answering).
    - ``drop_after``: streaming only; after N content chunks close the socket abruptly
      (no finish chunk, no ``[DONE]``, no terminating HTTP chunk).
    - ``error_after``: streaming only; after N content chunks send an SSE event
      ``data: {"error": {..., "type": "server_error"}}`` and end the body.
    - ``fail_status``: answer chat completions with this HTTP status and an OpenAI-shaped
      error body (429 rate limit, 500, 503, ...) instead of a completion.
    - ``include_usage_ignored``: ignore ``stream_options.include_usage`` (old servers,
      llama.cpp's server).
    - ``drop_after_error``: ``"close"`` or ``"reset"``: after an error answer, cut the next
      request on that connection unanswered (see ``DropsAfterError``).
    - ``models_status``: answer ``GET /v1/models`` with this HTTP status (a server that
      cannot list its models).

    Queued and per-prompt faults: ``fail_next``, ``fault_for_prompt``, ``requests_for``
    (``_faults``). ``drop_after`` and ``error_after`` count reasoning chunks too. A request's
    ``response_format``, ``reasoning_effort``, ``logit_bias`` and penalties are checked as
    the real API does (``_openai_checks``).
    """

    def __init__(
        self,
        models: list[str] | None = None,
        *,
        api_key: str | None = None,
        owned_by: str = "test",
        port: int = 0,
    ) -> None:
        self._init_prompt_faults()
        self.models: list[str] = list(models) if models else ["gpt-test"]
        self.api_key = api_key
        self.owned_by = owned_by
        #: Served at ``GET /version`` when set, as vLLM and TensorRT-LLM's server do.
        self.server_version: str | None = None
        self.reply_pieces: list[str] | None = None
        self.token_delay: float | None = None
        self.drop_after: int | None = None
        self.error_after: int | None = None
        self.fail_status: int | None = None
        self.include_usage_ignored: bool = False
        self.drop_after_error: str | None = None
        #: Quote the request's headers, credentials included, in every error message.
        self.echo_credentials: bool = False
        self.models_status: int | None = None
        #: Streamed before the answer as reasoning deltas under ``reasoning_field``
        #: (``reasoning_content``: vLLM, DeepSeek; ``reasoning``: llama.cpp's server), and
        #: counted as ``completion_tokens_details.reasoning_tokens``.
        self.reasoning_pieces: list[str] | None = None
        self.reasoning_field: str = "reasoning_content"
        #: The answer (JSON text) to requests that carry a ``response_format``.
        self.json_reply: str | None = None
        #: Refuse ``strict`` schemas that break strict mode's rules (OpenAI); False: as vLLM.
        self.strict_checked: bool = True
        #: Models that refuse ``image_url`` parts (a text-only model); the others see them and
        #: answer what they see (``_images.describe``).
        self.text_only: set[str] = set()
        #: Every image counts as one the server cannot read (its 400 ``invalid_image_format``).
        self.images_undecodable: bool = False
        self.disconnected = threading.Event()

        self._port = port
        self._lock = threading.Lock()
        self._requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._credentials: list[tuple[str, str, dict[str, str]]] = []
        self._last_params: dict[str, Any] = {}
        self._disconnects = 0
        self._chunks_sent = 0
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> OpenAITestServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", self._port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="OpenAITestServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # wake handler threads blocked on keep-alive reads
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- observability --------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """``(method, path, headers_without_authorization, parsed_json_or_None)``, a copy."""
        with self._lock:
            return list(self._requests)

    @property
    def credentials(self) -> list[tuple[str, str, dict[str, str]]]:
        """``(method, path, credential_headers)`` of every request: what a key leak looks like.

        The credential headers are ``authorization``, ``x-api-key`` and ``api-key``, lower-cased,
        only those the request carried.
        """
        with self._lock:
            return list(self._credentials)

    @property
    def last_params(self) -> dict[str, Any]:
        """Sampling/limit parameters of the last valid chat completion request."""
        with self._lock:
            return dict(self._last_params)

    @property
    def disconnects(self) -> int:
        with self._lock:
            return self._disconnects

    @property
    def chunks_sent(self) -> int:
        """Content chunks written by the most recent stream."""
        with self._lock:
            return self._chunks_sent

    def reset_faults(self) -> None:
        for name, value in _FAULT_DEFAULTS.items():
            setattr(self, name, value)
        self.clear_prompt_faults()

    # -- internals used by the handler ----------------------------------------------------

    def _register(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def _unregister(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self._requests.append((method, path, headers, body))

    def _record_credentials(self, method: str, path: str, headers: Any) -> None:
        found = {k.lower(): v for k, v in headers.items() if k.lower() in _CREDENTIAL_HEADERS}
        with self._lock:
            self._credentials.append((method, path, found))

    def _record_params(self, body: dict[str, Any]) -> None:
        keys = (
            "model",
            "temperature",
            "top_p",
            "seed",
            "max_tokens",
            "max_completion_tokens",
            "stop",
            "stream",
            "stream_options",
        )
        with self._lock:
            self._last_params = {k: body[k] for k in keys if k in body}

    def _fault_snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FAULT_DEFAULTS}

    def _stream_started(self) -> None:
        with self._lock:
            self._chunks_sent = 0

    def _chunk_sent(self) -> None:
        with self._lock:
            self._chunks_sent += 1

    def _client_disconnected(self) -> None:
        with self._lock:
            self._disconnects += 1
        self.disconnected.set()

    def _reply_for(self, messages: list[dict[str, Any]]) -> list[str]:
        if self.reply_pieces is not None:
            return list(self.reply_pieces)
        seen = _images.image_reply(_images.last_user("openai", {"messages": messages}))
        if seen is not None:
            return split_pieces(seen)
        last_user = ""
        for message in reversed(messages):
            if message.get("role") == "user":
                last_user = _content_text(message.get("content"))
                break
        return split_pieces("You said: " + last_user)

    def _model_object(self, model_id: str) -> dict[str, Any]:
        return {
            "id": model_id,
            "object": "model",
            "created": _MODEL_CREATED,
            "owned_by": self.owned_by,
        }

    def _model_objects(self) -> list[dict[str, Any]]:
        return [self._model_object(m) for m in self.models]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default="gpt-test", help="comma-separated model ids")
    parser.add_argument("--api-key", default=None)
    parser.add_argument(
        "--reply-chunks",
        type=int,
        default=None,
        help="reply with this many one-word pieces ('tok0 ', 'tok1 ', ...)",
    )
    parser.add_argument("--token-delay", type=float, default=None)
    parser.add_argument("--lifetime", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)

    server = OpenAITestServer(
        [m for m in args.models.split(",") if m], api_key=args.api_key, port=args.port
    )
    if args.reply_chunks is not None:
        server.reply_pieces = [f"tok{i} " for i in range(args.reply_chunks)]
    server.token_delay = args.token_delay

    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: terminated.append(signum))
    deadline = None if args.lifetime is None else time.monotonic() + args.lifetime
    server.start()
    try:
        sys.stdout.write(server.base_url + "\n")
        sys.stdout.flush()
        while not terminated and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
