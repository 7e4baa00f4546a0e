"""A small Anthropic Messages API server for offline tests (standard library only).

It speaks enough of the Anthropic REST API (``GET /v1/models``, ``GET /v1/models/{id}``,
``POST /v1/messages`` with and without ``stream``) for the official ``anthropic``
client to talk to it unchanged. Streams are Server-Sent Events in the API's own
shape (``event: <type>`` then ``data: <json>``): ``message_start``,
``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta``,
``thinking_delta`` then ``signature_delta`` in a ``thinking`` block, ``input_json_delta``
in a ``tool_use`` block), ``content_block_stop``, ``message_delta`` (``stop_reason`` and
usage, with ``output_tokens_details.thinking_tokens`` after thinking), ``message_stop``,
and ``error`` events. ``thinking`` (enabled: a trace before the answer), a forced
``tool_choice`` (the reply becomes the tool's input) and ``output_config.format`` are
checked as the API checks them. Error bodies are the API's
``{"type": "error", "error": {"type": ..., "message": ...}}``.

Replies are deterministic (``"You said: " + <last user message>`` in one-word pieces)
and a handful of fault knobs let tests exercise error paths.

Usage::

    with AnthropicTestServer(models=["claude-test"], api_key="sk-ant-test") as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-test")
        server.token_delay = 0.05

As a process (for benchmarks)::

    python -m tests.servers.anthropic_server --port 0 --reply-chunks 20000 [--api-key K]

prints the base URL as its first stdout line and serves until killed or until
``--lifetime`` seconds have passed.
"""

from __future__ import annotations

import argparse
import contextlib
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
from tests.servers._loopback import DropsAfterError, LoopbackServer

__all__ = ["AnthropicTestServer", "split_pieces"]

_CREATED_AT = "2025-01-01T00:00:00Z"

# Fault attributes and their defaults (restored by ``reset_faults``).
_FAULT_DEFAULTS: dict[str, Any] = {
    "token_delay": None,
    "drop_after": None,
    "error_after": None,
    "error_type": "overloaded_error",
    "fail_status": None,
    "models_status": None,
    "drop_after_error": None,
    "images_undecodable": False,
}

#: HTTP status -> (error type, message), as the API words them.
_FAIL_BODIES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "messages: the request was invalid"),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. Please try again later.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}

_STREAM_ERRORS: dict[str, str] = {
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
}

_ALLOWED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "output_config",
    }
)

_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
#: A fixed, opaque signature, as the API sends after each thinking block.
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"

_PIECE_RE = re.compile(r"\s*\S+\s*|\s+")


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into one-word pieces that keep their trailing whitespace."""
    return _PIECE_RE.findall(text)


def error_body(type_: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": type_, "message": message},
        "request_id": "req_" + uuid.uuid4().hex[:24],
    }


def _content_text(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block["text"]
            for block in content
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    return ""


def _apply_stop(pieces: list[str], stops: list[str]) -> tuple[list[str], str | None]:
    """Cut ``pieces`` right before the earliest stop sequence; return the one that matched."""
    joined = "".join(pieces)
    found = [(i, s) for s in stops if s for i in [joined.find(s)] if i >= 0]
    if not found:
        return pieces, None
    cut, matched = min(found)
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
    return out, matched


class _ClientGoneError(Exception):
    """The client closed the connection while we were writing."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: AnthropicTestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(DropsAfterError, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AnthropicTestServer/1.0"
    server: _HTTPServer

    # -- plumbing -----------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._track(self.connection, False)

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
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def _send_error(
        self, status: int, type_: str, message: str, retry_after: str | None = None
    ) -> None:
        # Never retried by the SDK, whatever the client's settings: tests count requests.
        headers = {"x-should-retry": "false"}
        if retry_after is not None:
            headers["retry-after"] = retry_after
        elif status == 429:
            headers["retry-after"] = "20"
        self._send_json(status, error_body(type_, message), headers)

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP/1.1 chunk (chunked transfer encoding), unbuffered."""
        try:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
        except OSError as exc:  # BrokenPipe, ConnectionReset, ConnectionAborted
            raise _ClientGoneError from exc

    def _write_event(self, type_: str, data: dict[str, Any]) -> None:
        self._write_chunk(f"event: {type_}\ndata: {json.dumps(data)}\n\n".encode())

    def _abort_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- dispatch -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

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
        secret = {"authorization", "x-api-key"}
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in secret}
        owner._record(method, self.path, headers, parsed)
        owner._record_credentials(method, self.path, self.headers)
        if self._cut_if_doomed():
            return

        if not self._check_headers(owner):
            return
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if method == "GET" and path == "/v1/models":
            status = owner.models_status
            if status is not None:
                type_, message = _FAIL_BODIES.get(status, ("api_error", "Internal server error"))
                self._send_error(status, type_, message)
                return
            data = owner._model_objects()
            self._send_json(
                200,
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                },
            )
        elif method == "GET" and path.startswith("/v1/models/"):
            model_id = unquote(path[len("/v1/models/") :])
            if model_id in owner.models:
                self._send_json(200, owner._model_object(model_id))
            else:
                self._send_error(404, "not_found_error", f"model: {model_id}")
        elif method == "POST" and path == "/v1/messages":
            if bad_json or not isinstance(parsed, dict):
                self._send_error(
                    400, "invalid_request_error", "There was an issue with the JSON body."
                )
                return
            self._messages(owner, parsed)
        else:
            self._send_error(404, "not_found_error", "Not Found")

    def _check_headers(self, owner: AnthropicTestServer) -> bool:
        if owner.api_key is not None:
            key = self.headers.get("x-api-key")
            if key is None:
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                key = token.strip() if scheme.lower() == "bearer" else None
            if not key:
                self._send_error(401, "authentication_error", "x-api-key header is required")
                return False
            if key != owner.api_key:
                self._send_error(401, "authentication_error", "invalid x-api-key")
                return False
        if not self.headers.get("anthropic-version"):
            self._send_error(400, "invalid_request_error", "anthropic-version: header is required")
            return False
        return True

    # -- messages -------------------------------------------------------------------------

    def _invalid(self, message: str) -> bool:
        self._send_error(400, "invalid_request_error", message)
        return False

    def _validate(self, owner: AnthropicTestServer, body: dict[str, Any]) -> bool:
        extra = sorted(set(body) - _ALLOWED_FIELDS)
        if extra:
            return self._invalid(f"{extra[0]}: Extra inputs are not permitted")
        if not isinstance(body.get("model"), str):
            return self._invalid("model: Field required")
        max_tokens = body.get("max_tokens")
        if "max_tokens" not in body:
            return self._invalid("max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return self._invalid("max_tokens: Input should be a valid integer greater than 0")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._invalid("messages: at least one message is required")
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                return self._invalid(f"messages.{index}: Input should be a valid dictionary")
            role = message.get("role")
            if role not in ("user", "assistant"):
                return self._invalid(
                    f'messages: Unexpected role "{role}". The Messages API accepts a top-level '
                    '`system` parameter, not "system" as an input message role.'
                )
        if messages[0].get("role") != "user":
            return self._invalid('messages: first message must use the "user" role')
        system = body.get("system")
        if system is not None and not isinstance(system, (str, list)):
            return self._invalid("system: Input should be a valid string")
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return self._invalid(f"{name}: Input should be a valid number")
            if not 0 <= value <= 1:
                return self._invalid(f"{name}: range: 0..1")
        stops = body.get("stop_sequences")
        if stops is not None and not (
            isinstance(stops, list) and all(isinstance(s, str) for s in stops)
        ):
            return self._invalid("stop_sequences: Input should be a valid list of strings")
        if not self._valid_thinking(body) or not self._valid_output(body):
            return False
        if body["model"] not in owner.models:
            self._send_error(404, "not_found_error", f"model: {body['model']}")
            return False
        vision = body["model"] not in owner.text_only
        problem = _images.anthropic_problem(body, vision, body["model"], owner.images_undecodable)
        return self._invalid(problem) if problem is not None else True

    def _valid_thinking(self, body: dict[str, Any]) -> bool:
        """The API's rules for ``thinking`` and what it cannot be combined with."""
        thinking = body.get("thinking")
        if thinking is None:
            return True
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled", "adaptive"):
            return self._invalid("thinking: Input tag does not match any of the expected tags")
        if kind != "enabled":
            return True
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            return self._invalid("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            return self._invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if body["max_tokens"] <= budget:
            return self._invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult "
                f"our documentation at {_DOCS}#max-tokens-and-context-window-size"
            )
        temperature = body.get("temperature")
        if temperature is not None and temperature != 1:
            return self._invalid(
                "`temperature` may only be set to 1 when thinking is enabled. Please consult "
                f"our documentation at {_DOCS}#feature-compatibility"
            )
        top_p = body.get("top_p")
        if top_p is not None and top_p < 0.95:
            return self._invalid(
                "`top_p` must be greater than or equal to 0.95 or unset when thinking is "
                f"enabled. Please consult our documentation at {_DOCS}#feature-compatibility"
            )
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in ("tool", "any"):
            return self._invalid("Thinking may not be enabled when tool_choice forces tool use.")
        return True

    def _valid_output(self, body: dict[str, Any]) -> bool:
        """``tool_choice`` naming a tool that exists; a closed ``output_config`` schema."""
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "tool":
            names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
            if choice.get("name") not in names:
                return self._invalid(
                    f"tool_choice: Tool '{choice.get('name')}' not found in provided tools"
                )
        output = body.get("output_config")
        if output is None:
            return True
        fmt = output.get("format") if isinstance(output, dict) else None
        if fmt is None:
            return True
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            return self._invalid("output_config.format: Input tag does not match 'json_schema'")
        if not isinstance(fmt.get("schema"), dict):
            return self._invalid("output_config.format.schema: Field required")
        if _open_object(fmt["schema"]):
            return self._invalid(
                "output_config.format.schema: For 'object' type, 'additionalProperties' "
                "must be explicitly set to false"
            )
        return True

    def _messages(self, owner: AnthropicTestServer, body: dict[str, Any]) -> None:
        faults = owner._fault_snapshot()
        if not self._validate(owner, body):
            return
        owner._record_body(body)
        fault = owner._take_fault(body["messages"])
        if fault is not None and fault.kind != "status":
            faults["drop_after" if fault.kind == "drop" else "error_after"] = fault.after
        status = fault.status if fault and fault.kind == "status" else faults["fail_status"]
        if status is not None:
            status = int(status)
            type_, message = _FAIL_BODIES.get(status, ("api_error", "Internal server error"))
            self._send_error(status, type_, message, fault.retry_after if fault else None)
            return

        messages = body["messages"]
        system = _content_text(body.get("system"))
        input_tokens = len(system.split()) + sum(
            len(_content_text(m.get("content")).split()) for m in messages
        )
        pieces = owner._reply_for(messages)
        limit = body["max_tokens"]
        thinking: list[str] = []
        if (body.get("thinking") or {}).get("type") == "enabled":
            thinking = owner._thinking_for(messages)[:limit]
            limit -= len(thinking)  # the trace counts toward max_tokens, as on the API
        truncated = len(pieces) > limit
        if truncated:
            pieces = pieces[:limit]
        pieces, matched = _apply_stop(pieces, list(body.get("stop_sequences") or []))
        choice = body.get("tool_choice")
        tool = choice.get("name") if isinstance(choice, dict) else None
        if matched is not None:
            stop_reason = "stop_sequence"
        elif truncated:
            stop_reason = "max_tokens"
        elif tool:
            stop_reason = "tool_use"
        else:
            stop_reason = "end_turn"
        content: list[dict[str, Any]] = []
        if thinking:
            content.append(
                {"type": "thinking", "thinking": "".join(thinking), "signature": SIGNATURE}
            )
        if tool:
            try:
                tool_input = json.loads("".join(pieces))
            except ValueError:
                tool_input = {}
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_" + uuid.uuid4().hex[:24],
                    "name": tool,
                    "input": tool_input,
                }
            )
        elif pieces or not thinking:
            content.append({"type": "text", "text": "".join(pieces)})
        usage: dict[str, Any] = {
            "input_tokens": input_tokens,
            "output_tokens": len(thinking) + len(pieces),
        }
        if thinking:
            usage["output_tokens_details"] = {"thinking_tokens": len(thinking)}
        message = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": matched,
            "usage": usage,
        }
        if not body.get("stream"):
            delay = faults["token_delay"]
            if delay and owner._stopping.wait(delay * len(pieces)):
                self._abort_connection()
                return
            self._send_json(200, message)
            return
        self._stream(owner, faults, message, _blocks(message, thinking, pieces))

    def _stream(
        self,
        owner: AnthropicTestServer,
        faults: dict[str, Any],
        message: dict[str, Any],
        blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
        self.end_headers()
        owner._stream_started()

        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1},
        }
        total = sum(len(deltas) for _, deltas in blocks)
        sent = 0
        try:
            self._write_event("message_start", {"type": "message_start", "message": start})
            for index, (block, deltas) in enumerate(blocks):
                self._write_event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                )
                if index == 0:
                    self._write_event("ping", {"type": "ping"})
                for delta in deltas:
                    if self._faulted(owner, faults, sent):
                        return
                    self._write_event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                    owner._chunk_sent()
                    sent += 1
                if sent == total and self._faulted(owner, faults, sent, last=True):
                    return
                self._write_event(
                    "content_block_stop", {"type": "content_block_stop", "index": index}
                )
            self._write_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": message["stop_reason"],
                        "stop_sequence": message["stop_sequence"],
                    },
                    "usage": {
                        key: value
                        for key, value in message["usage"].items()
                        if key in ("output_tokens", "output_tokens_details")
                    },
                },
            )
            self._write_event("message_stop", {"type": "message_stop"})
            self._write_chunk(b"")  # terminating zero-length chunk
        except _ClientGoneError:
            self.close_connection = True
            owner._client_disconnected()

    def _faulted(
        self, owner: AnthropicTestServer, faults: dict[str, Any], sent: int, last: bool = False
    ) -> bool:
        """Apply the stream faults before delta number ``sent`` (``last``: after them all)."""
        if faults["drop_after"] is not None and sent >= faults["drop_after"]:
            self._abort_connection()
            return True
        if faults["error_after"] is not None and sent >= faults["error_after"]:
            self._send_stream_error(faults["error_type"])
            return True
        if last:
            return False
        delay = faults["token_delay"]
        if (delay and owner._stopping.wait(delay)) or owner._stopping.is_set():
            self._abort_connection()
            return True
        return False

    def _send_stream_error(self, type_: str) -> None:
        message = _STREAM_ERRORS.get(type_, "Internal server error")
        body = error_body(type_, message)
        body.pop("request_id")
        self._write_event("error", body)
        self._write_chunk(b"")


def _open_object(schema: Any) -> bool:
    """Whether an object schema anywhere in ``schema`` leaves ``additionalProperties`` open."""
    if isinstance(schema, list):
        return any(_open_object(item) for item in schema)
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        return True
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions"):
            if isinstance(value, dict) and any(_open_object(v) for v in value.values()):
                return True
        elif isinstance(value, (dict, list)) and _open_object(value):
            return True
    return False


def _blocks(
    message: dict[str, Any], thinking: list[str], pieces: list[str]
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The streamed content blocks: each one's ``content_block_start`` and its deltas."""
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if thinking:
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in thinking]
        deltas.append({"type": "signature_delta", "signature": SIGNATURE})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    for block in message["content"]:
        if block["type"] == "tool_use":
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
            blocks.append((start, [{"type": "input_json_delta", "partial_json": ""}, *deltas]))
        elif block["type"] == "text":
            deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
            blocks.append(({"type": "text", "text": ""}, deltas))
    return blocks


class AnthropicTestServer(PromptFaults, LoopbackServer):
    """Anthropic Messages API test server on 127.0.0.1 (free port unless ``port`` is given).

    Requests need the ``anthropic-version`` header and, when ``api_key`` is set, that key
    in ``x-api-key`` (or ``Authorization: Bearer``, which newer SDKs send).

    Fault attributes (read once at the start of each ``POST /v1/messages``):

    - ``token_delay``: seconds before each ``content_block_delta`` (non-stream: the total
      ``token_delay * pieces`` before answering).
    - ``drop_after``: streaming only; after N deltas close the socket abruptly.
    - ``error_after``: streaming only; after N deltas send an ``error`` event of type
      ``error_type`` (``overloaded_error`` unless set) and end the body.
    - ``fail_status``: answer with this HTTP status and the API's error body (400, 401,
      403, 404, 429 rate limit, 500, 529 overloaded, ...).
    - ``models_status``: answer ``GET /v1/models`` with this HTTP status instead.
    - ``drop_after_error``: ``"close"`` or ``"reset"``: after an error answer, cut the next
      request on that connection unanswered (see ``DropsAfterError``).

    Queued and per-prompt faults: ``fail_next``, ``fault_for_prompt``, ``requests_for``
    (``_faults``).
    """

    thread_name = "AnthropicTestServer"

    def __init__(
        self,
        models: list[str] | None = None,
        *,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        self.models: list[str] = list(models) if models else ["claude-test"]
        self.api_key = api_key
        self.reply_pieces: list[str] | None = None
        #: The trace streamed when thinking is enabled (default: "Let me think: " + prompt).
        self.thinking_pieces: list[str] | None = None
        self.token_delay: float | None = None
        self.drop_after: int | None = None
        self.error_after: int | None = None
        self.error_type: str = "overloaded_error"
        self.fail_status: int | None = None
        self.models_status: int | None = None
        self.drop_after_error: str | None = None
        #: Models that refuse image blocks; the others answer what they see.
        self.text_only: set[str] = set()
        #: Every image counts as one the API cannot process (a 400).
        self.images_undecodable: bool = False
        self.disconnected = threading.Event()

        self._init_loopback("127.0.0.1", port)
        self._init_prompt_faults()
        self._requests: list[tuple[str, str, dict[str, str], Any]] = []
        self._credentials: list[tuple[str, str, dict[str, str]]] = []
        self._last_body: dict[str, Any] = {}
        self._disconnects = 0
        self._chunks_sent = 0

    # -- lifecycle ------------------------------------------------------------------------

    def _new_httpd(self) -> ThreadingHTTPServer:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        return httpd

    @property
    def base_url(self) -> str:
        """What the SDK takes as ``base_url`` (it adds ``/v1/...`` itself)."""
        return self.url

    # -- observability --------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str], Any]]:
        """``(method, path, headers_without_credentials, parsed_json_or_None)``, a copy."""
        with self._lock:
            return list(self._requests)

    @property
    def credentials(self) -> list[tuple[str, str, dict[str, str]]]:
        """``(method, path, credential_headers)`` of every request (``authorization``,
        ``x-api-key``, lower-cased, only those sent): what a key leak looks like."""
        with self._lock:
            return list(self._credentials)

    @property
    def last_body(self) -> dict[str, Any]:
        """The JSON body of the last valid ``POST /v1/messages``."""
        with self._lock:
            return dict(self._last_body)

    @property
    def disconnects(self) -> int:
        with self._lock:
            return self._disconnects

    @property
    def chunks_sent(self) -> int:
        """Deltas (text, thinking, signature, tool input) written by the most recent stream."""
        with self._lock:
            return self._chunks_sent

    def reset_faults(self) -> None:
        for name, value in _FAULT_DEFAULTS.items():
            setattr(self, name, value)
        self.clear_prompt_faults()

    # -- internals used by the handler ----------------------------------------------------

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self._requests.append((method, path, headers, body))

    def _record_credentials(self, method: str, path: str, headers: Any) -> None:
        found = {
            k.lower(): v for k, v in headers.items() if k.lower() in {"authorization", "x-api-key"}
        }
        with self._lock:
            self._credentials.append((method, path, found))

    def _record_body(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._last_body = dict(body)

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
        seen = _images.image_reply(_images.last_user("anthropic", {"messages": messages}))
        if seen is not None:
            return split_pieces(seen)
        last_user = ""
        for message in reversed(messages):
            if message.get("role") == "user":
                last_user = _content_text(message.get("content"))
                break
        return split_pieces("You said: " + last_user)

    def _thinking_for(self, messages: list[dict[str, Any]]) -> list[str]:
        if self.thinking_pieces is not None:
            return list(self.thinking_pieces)
        last_user = ""
        for message in reversed(messages):
            if message.get("role") == "user":
                last_user = _content_text(message.get("content"))
                break
        return split_pieces("Let me think: " + last_user)

    def _model_object(self, model_id: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": model_id,
            "display_name": model_id.replace("-", " ").title(),
            "created_at": _CREATED_AT,
            "lifecycle": "active",
        }

    def _model_objects(self) -> list[dict[str, Any]]:
        return [self._model_object(m) for m in self.models]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Anthropic Messages API test server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default="claude-test", help="comma-separated model ids")
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

    server = AnthropicTestServer(
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
