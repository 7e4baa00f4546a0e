"""An Ollama-compatible HTTP server for offline tests and benchmarks.

It speaks the wire protocol of a real Ollama server (see
``../shared/reference/ollama-api.md``) closely enough that an httpx-based
client cannot tell the difference for the endpoints it implements, but its
models are fakes: replies are deterministic, downloads move no real bytes, and
faults (slow tokens, dropped connections, in-band errors, stalls) can be
switched on at any moment from a test.

Standard library only, so it runs wherever the tests run::

    with OllamaTestServer() as server:
        httpx.post(server.url + "/api/chat", json={...})

or as a process for benchmarks::

    python -m tests.servers.ollama_server --port 0 --reply-chunks 20000
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import json
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.servers import _images
from tests.servers._faults import Fault, PromptFaults
from tests.servers._json_kind import json_kind
from tests.servers._loopback import LoopbackHTTPServer, LoopbackServer, cut

__all__ = ["DEFAULT_LIBRARY", "FakeModel", "OllamaTestServer", "default_models", "vision_model"]

DEFAULT_VERSION = "0.12.6"
DEFAULT_ERROR_MESSAGE = "an error was encountered while running the model: unexpected EOF"
DEFAULT_STALL_SECONDS = 30.0
#: What Ollama (or the proxy in front of it) says with these statuses.
_FAULT_MESSAGES = {
    429: "too many requests, please retry later",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
_GO_BUFFER_BYTES = 2048  # net/http's bufferBeforeChunkingSize
PULL_CHUNK_BYTES = 64 * 1024
"""Bytes "downloaded" between two pull progress lines."""

JSON_UTF8 = "application/json; charset=utf-8"  # gin c.JSON
JSON_BARE = "application/json"  # streamResponse / waitForStream override
NDJSON = "application/x-ndjson"
TEXT_UTF8 = "text/plain; charset=utf-8"  # gin c.String
TEXT_BARE = "text/plain"  # gin's default 404/405 pages

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
_MAX_DURATION_NS = 2**63 - 1  # Go's math.MaxInt64 time.Duration ("keep forever")
_DEFAULT_KEEP_ALIVE_NS = 5 * 60 * 1_000_000_000

Layer = tuple[str, int]
"""A registry blob: (``sha256:<64 hex>`` digest, size in bytes)."""
ReplyFn = Callable[[list[dict[str, Any]]], list[str]]


def _digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


_SHARED_LICENSE = (_digest("license: apache-2.0"), 11_357)

DEFAULT_LIBRARY: dict[str, list[Layer]] = {
    "tinyllama:latest": [
        (_digest("tinyllama:latest/model"), 1_250_000),
        (_digest("tinyllama:latest/template"), 2_100),
        _SHARED_LICENSE,
    ],
    "all-minilm:latest": [
        (_digest("all-minilm:latest/model"), 450_000),
        _SHARED_LICENSE,
        (_digest("all-minilm:latest/params"), 530),
    ],
    "qwen2.5:0.5b": [
        (_digest("qwen2.5:0.5b/model"), 900_000),
        (_digest("qwen2.5:0.5b/template"), 1_500),
    ],
}
"""What ``/api/pull`` can fetch by default: small, so tests stay fast.

The licence layer is shared, as on the real registry, so pulling the second
model shows the "layer already present" line.
"""


@dataclass
class FakeModel:
    """An installed model; ``reply`` may compute the reply pieces from the messages."""

    name: str
    size: int = 91_000_000
    family: str = "llama"
    parameter_size: str = "135M"
    quantization_level: str = "Q4_0"
    reply: ReplyFn | None = None
    capabilities: tuple[str, ...] = ("completion",)
    context_length: int = 2048
    #: With ``"thinking"`` in ``capabilities``: the trace pieces sent before the answer
    #: (default: ``"Thinking about: " + <last user message>``).
    thinking: ReplyFn | None = None


def default_models() -> list[FakeModel]:
    """The models a server has unless told otherwise: two text-only ones."""
    return [
        FakeModel("smollm:135m", size=91_739_413),
        FakeModel(
            "qwen2.5:0.5b",
            size=397_821_319,
            family="qwen2",
            parameter_size="494.03M",
            quantization_level="Q4_K_M",
            capabilities=("completion", "tools", "insert"),
            context_length=32768,
        ),
    ]


def vision_reply(messages: list[dict[str, Any]]) -> list[str]:
    """A vision model's answer: what it sees in the last user message's ``images``
    (``_images.describe``), else ``default_reply``."""
    answer = _images.image_reply(_images.last_user("ollama", {"messages": messages}))
    return split_words(answer) if answer is not None else default_reply(messages)


def vision_model(name: str = "llava:7b") -> FakeModel:
    """A vision model (capabilities completion and vision) whose answer depends on the
    image it received: ``OllamaTestServer(models=[*default_models(), vision_model()])``."""
    return FakeModel(
        name,
        size=4_733_363_377,
        family="llama",
        parameter_size="7B",
        quantization_level="Q4_0",
        reply=vision_reply,
        capabilities=("completion", "vision"),
        context_length=4096,
    )


def split_words(text: str) -> list[str]:
    """Split into one piece per word, each keeping its trailing whitespace."""
    pieces = re.findall(r"\s*\S+\s*", text)
    return pieces if pieces or not text else [text]


def _last_user(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if str(message.get("role", "")).lower() == "user":
            return str(message.get("content") or "")
    return ""


def default_reply(messages: Sequence[dict[str, Any]]) -> list[str]:
    """``"You said: " + <last user message>``, one word per piece."""
    return split_words("You said: " + _last_user(messages))


def default_thinking(messages: Sequence[dict[str, Any]]) -> list[str]:
    """A thinking model's trace: ``"Thinking about: " + <last user message>``."""
    return split_words("Thinking about: " + _last_user(messages))


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class ModelName:
    """A parsed ``[host/][namespace/]model[:tag]`` with Ollama's defaults filled in."""

    host: str
    namespace: str
    model: str
    tag: str

    @property
    def key(self) -> str:
        """Case-insensitive identity, as ``getExistingName`` matches names."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}".lower()

    @property
    def full(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def display(self) -> str:
        """Go's ``DisplayShortest``: drops default host/namespace, always keeps the tag."""
        prefix = ""
        if self.host.lower() != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        return f"{prefix}{self.model}:{self.tag}"


_PART_RE = {
    "host": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}"),
    "namespace": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"),
    "model": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
    "tag": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
}


def parse_name(text: str) -> ModelName | None:
    """Parse a model name like ``types/model/name.go``; None when it is invalid."""
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    tag = ""
    if text.rfind(":") > text.rfind("/"):
        text, tag = text.rsplit(":", 1)
        if not tag:
            return None
    parts = text.split("/")
    if len(parts) > 3:
        return None
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(parts) == 3:
        host, namespace, model = parts
    elif len(parts) == 2:
        namespace, model = parts
    else:
        model = parts[0]
    tag = tag or DEFAULT_TAG
    for kind, value in (("host", host), ("namespace", namespace), ("model", model), ("tag", tag)):
        if not _PART_RE[kind].fullmatch(value):
            return None
    return ModelName(host, namespace, model, tag)


# --------------------------------------------------------------------------- encoding


def go_json(value: Any) -> str:
    """Serialise like Go's ``json.Marshal``: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        for char, escaped in (
            ("<", "\\u003c"),
            (">", "\\u003e"),
            ("&", "\\u0026"),
            ("\u2028", "\\u2028"),
            ("\u2029", "\\u2029"),
        ):
            text = text.replace(char, escaped)
    return text


_utc_cache: tuple[int, str] = (-1, "")


def utc_timestamp(ns: int | None = None) -> str:
    """RFC 3339 UTC with nanoseconds, trailing zeros trimmed (Go's ``RFC3339Nano``)."""
    global _utc_cache
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    cached_second, base = _utc_cache
    if cached_second != seconds:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _utc_cache = (seconds, base)
    fraction = f".{frac:09d}".rstrip("0").rstrip(".")
    return f"{base}{fraction}Z"


def local_timestamp(ns: int) -> str:
    """RFC 3339 in local time with its offset, as Go prints file modification times."""
    seconds, frac = divmod(ns, 1_000_000_000)
    try:
        moment = datetime.fromtimestamp(seconds).astimezone()
    except (OverflowError, OSError, ValueError):
        moment = datetime.max.replace(microsecond=0).astimezone()
    fraction = f".{frac:09d}".rstrip("0").rstrip(".")
    offset = moment.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        zone = "Z"
    else:
        total = int(offset.total_seconds())
        sign = "+" if total >= 0 else "-"
        hours, minutes = divmod(abs(total) // 60, 60)
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone


# --------------------------------------------------------------------------- request decoding


class ApiError(Exception):
    """An error answered as ``{"error": message}`` before any streamed byte."""

    def __init__(self, status: int, message: str, content_type: str = JSON_UTF8) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.content_type = content_type


def _go_char(char: str) -> str:
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    return repr(char) if not char.isprintable() else f"'{char}'"


def _go_syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """Approximate encoding/json's syntax error text for malformed bodies."""
    if exc.pos >= len(text) or exc.msg.startswith("Unterminated"):
        return "unexpected EOF"
    char = _go_char(text[exc.pos])
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if exc.msg.startswith("Expecting ':'"):
        return f"invalid character {char} after object key"
    if exc.msg.startswith("Expecting ','"):
        return f"invalid character {char} after object key:value pair"
    if exc.msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    return f"invalid character {char} looking for beginning of value"


# field -> (json kind, Go type name) of the request structs we validate.
_STR = ("string", "string")
_BOOL = ("bool", "bool")
_INT = ("int", "int")
_OPTIONS = ("object", "map[string]interface {}")
_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "ChatRequest": {
        "model": _STR,
        "messages": ("array", "[]api.Message"),
        "stream": _BOOL,
        "tools": ("array", "api.Tools"),
        "options": _OPTIONS,
        "truncate": _BOOL,
        "shift": _BOOL,
        "logprobs": _BOOL,
        "top_logprobs": _INT,
    },
    "GenerateRequest": {
        "model": _STR,
        "prompt": _STR,
        "suffix": _STR,
        "system": _STR,
        "template": _STR,
        "context": ("array", "[]int"),
        "stream": _BOOL,
        "raw": _BOOL,
        "images": ("array", "[]api.ImageData"),
        "options": _OPTIONS,
        "truncate": _BOOL,
        "shift": _BOOL,
        "logprobs": _BOOL,
        "top_logprobs": _INT,
    },
    "PullRequest": {
        "model": _STR,
        "name": _STR,
        "insecure": _BOOL,
        "stream": _BOOL,
        "username": _STR,
        "password": _STR,
    },
    "ShowRequest": {
        "model": _STR,
        "name": _STR,
        "system": _STR,
        "template": _STR,
        "verbose": _BOOL,
        "options": _OPTIONS,
    },
    "DeleteRequest": {"model": _STR, "name": _STR},
}


def _kind_matches(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _type_error(value: Any, struct: str, path: str, go_type: str) -> ApiError:
    kind = json_kind(value)
    if kind == "number" and go_type == "int":
        kind = f"number {value}"
    return ApiError(
        400, f"json: cannot unmarshal {kind} into Go struct field {struct}.{path} of type {go_type}"
    )


def decode_request(raw: bytes, struct: str) -> dict[str, Any]:
    """Bind a JSON body the way gin's ``ShouldBindJSON`` does, with Go's error texts."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        raise ApiError(400, "missing request body")
    try:
        value, _ = json.JSONDecoder().raw_decode(text)  # Go ignores trailing data
    except json.JSONDecodeError as exc:
        raise ApiError(400, _go_syntax_error(text, exc)) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(
            400, f"json: cannot unmarshal {json_kind(value)} into Go value of type api.{struct}"
        )
    for key, (kind, go_type) in _FIELDS.get(struct, {}).items():
        item = value.get(key)
        if item is not None and not _kind_matches(item, kind):
            raise _type_error(item, struct, key, go_type)
    body = {k: v for k, v in value.items() if v is not None}
    if struct == "ChatRequest":
        for message in body.get("messages", []):
            if not isinstance(message, dict):
                raise _type_error(message, struct, "messages", "api.Message")
            for key in ("role", "content"):
                item = message.get(key)
                if item is not None and not isinstance(item, str):
                    raise _type_error(item, struct, f"messages.{key}", "string")
    if "keep_alive" in body:
        body["keep_alive"] = parse_keep_alive(body["keep_alive"])
    if "think" in body:
        _check_think(body["think"])
    return body


_DURATION_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` (nanoseconds); ValueError with Go's message."""
    error = ValueError(f"time: invalid duration {json.dumps(text)}")
    rest, sign = text, 1
    if rest[:1] in "+-" and rest:
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise error
    total, pos = 0.0, 0
    while pos < len(rest):
        match = _DURATION_RE.match(rest, pos)
        if not match or match.group(1) in ("", "."):
            raise error
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    return sign * int(total)


def parse_keep_alive(value: Any) -> int:
    """``api.Duration.UnmarshalJSON``: seconds or a Go duration string, negative = forever."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        go_type = {
            "bool": "bool",
            "array": "[]interface {}",
            "object": "map[string]interface {}",
        }[json_kind(value)]
        raise ApiError(400, f"Unsupported type: '{go_type}'")
    if isinstance(value, str):
        try:
            ns = parse_go_duration(value)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    else:
        ns = int(value * 1_000_000_000)
    return _MAX_DURATION_NS if ns < 0 else ns


def _check_think(value: Any) -> None:
    if isinstance(value, bool) or value in ("low", "medium", "high", "max"):
        return
    shown = json.dumps(value) if isinstance(value, str) else go_json(value)
    raise ApiError(
        400,
        f'invalid think value: {shown} (must be "high", "medium", "low", "max", true, or false)',
    )


_INT_OPTIONS = frozenset(
    {
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
    }
)
_FLOAT_OPTIONS = frozenset(
    {
        "top_p",
        "min_p",
        "typical_p",
        "temperature",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
    }
)
_BOOL_OPTIONS = frozenset({"use_mmap"})


def check_options(options: dict[str, Any]) -> None:
    """``api.Options.FromMap``: known keys must have the right JSON type, others are ignored."""
    for key, value in options.items():
        if value is None:
            continue
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in _INT_OPTIONS:
            ok, expected = is_number, "integer"
        elif key in _FLOAT_OPTIONS:
            ok, expected = is_number, "float32"
        elif key in _BOOL_OPTIONS:
            ok, expected = isinstance(value, bool), "boolean"
        elif key == "stop":
            if not isinstance(value, list):
                ok, expected = False, "array"
            elif not all(isinstance(item, str) for item in value):
                raise ApiError(500, f'option "{key}" must be of an array of strings')
            else:
                ok, expected = True, "array"
        else:
            continue
        if not ok:
            raise ApiError(500, f'option "{key}" must be of type {expected}')


# --------------------------------------------------------------------------- server state


@dataclass
class _Installed:
    model: FakeModel
    name: ModelName
    modified_ns: int
    digest: str
    layers: list[Layer] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.model.family,
            "families": [self.model.family],
            "parameter_size": self.model.parameter_size,
            "quantization_level": self.model.quantization_level,
        }


@dataclass
class _Plan:
    pieces: list[str]
    eval_count: int
    done_reason: str
    #: Sent before ``pieces`` as ``message.thinking`` (``thinking`` on /api/generate).
    thinking: list[str] = field(default_factory=list)


class _ClientGone(Exception):
    """A write failed: the client went away."""


class _Dropped(Exception):
    """The server cut the connection on purpose (fault injection or shutdown)."""


class OllamaTestServer(PromptFaults, LoopbackServer):
    """A fake Ollama on 127.0.0.1 with switchable faults and observable traffic.

    Faults are plain attributes, read at the moment they matter, so a test may
    change them while a stream is running.
    """

    def __init__(
        self,
        models: Iterable[FakeModel] | None = None,
        *,
        version: str = DEFAULT_VERSION,
        library: dict[str, list[Layer]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.version = version
        self._init_loopback(host, port)
        self._init_prompt_faults()
        self.reply_pieces: list[str] | None = None
        #: The trace of a thinking model, instead of its ``FakeModel.thinking``.
        self.thinking_pieces: list[str] | None = None
        self.disconnected = threading.Event()

        self._requests: list[tuple[str, str, Any]] = []
        self._disconnects = 0
        self._chunks_sent = 0
        self._pull_bytes_sent = 0
        self._installed: dict[str, _Installed] = {}
        self._loaded: dict[str, int] = {}  # model key -> expiry (ns since epoch)
        self._blobs: dict[str, int] = {}  # digest -> bytes present (partial or complete)
        self._library: dict[str, tuple[ModelName, list[Layer]]] = {}

        self.token_delay: float = 0.0
        self.drop_after: int | None = None
        self.error_after: int | None = None
        self.error_message: str = DEFAULT_ERROR_MESSAGE
        self.fail_status: int | None = None
        self.stall_after: int | None = None
        self.stall_seconds: float = DEFAULT_STALL_SECONDS
        self.pull_drop_after_bytes: int | None = None
        self.pull_delay: float = 0.0
        #: After an error answer, keep the connection open but cut the next request on it
        #: unanswered: ``"close"`` (FIN) or ``"reset"`` (RST), as a server that closed the
        #: keep-alive connection looks to a client that reuses it.
        self.drop_after_error: str | None = None
        #: Every image counts as one no decoder knows (a 500 from the runner, as Ollama's).
        self.images_undecodable = False
        #: False: ``/api/show`` omits ``capabilities``, as Ollama before 0.6.4 did.
        self.lists_capabilities = True
        self._route_table = self._routes()

        for lib_name, layers in (DEFAULT_LIBRARY if library is None else library).items():
            parsed = parse_name(lib_name)
            if parsed is None:
                raise ValueError(f"invalid library model name {lib_name!r}")
            self._library[parsed.key] = (parsed, list(layers))
        now = time.time_ns()
        for index, model in enumerate(default_models() if models is None else models):
            # Earlier models look more recently modified, so /api/tags keeps the given order.
            self._install(model, modified_ns=now - index * 60_000_000_000)

    # ------------------------------------------------------------------ lifecycle

    thread_name = "ollama-test-server"

    def _new_httpd(self) -> _HTTPServer:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.owner = self
        return httpd

    def reset_faults(self) -> None:
        """Switch every fault off (defaults), e.g. between tests sharing one server."""
        self.token_delay = 0.0
        self.drop_after = None
        self.error_after = None
        self.error_message = DEFAULT_ERROR_MESSAGE
        self.fail_status = None
        self.stall_after = None
        self.stall_seconds = DEFAULT_STALL_SECONDS
        self.pull_drop_after_bytes = None
        self.pull_delay = 0.0
        self.drop_after_error = None
        self.images_undecodable = False
        self.clear_prompt_faults()

    # ------------------------------------------------------------------ observability

    @property
    def requests(self) -> list[tuple[str, str, Any]]:
        """Snapshot of ``(method, path, parsed JSON body or None)`` in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def disconnects(self) -> int:
        """How many responses the client abandoned (a write hit a closed socket)."""
        with self._lock:
            return self._disconnects

    @property
    def chunks_sent(self) -> int:
        """Content chunks written by the most recent chat/generate stream."""
        with self._lock:
            return self._chunks_sent

    @property
    def pull_bytes_sent(self) -> int:
        """Layer bytes "transferred" by all pulls so far (resumed pulls add only the rest)."""
        with self._lock:
            return self._pull_bytes_sent

    @property
    def installed(self) -> list[str]:
        """Display names of the installed models."""
        with self._lock:
            return [entry.name.display() for entry in self._installed.values()]

    def _record(self, method: str, path: str, body: Any) -> None:
        with self._lock:
            self._requests.append((method, path, body))

    def _note_disconnect(self) -> None:
        if self._stopping.is_set():
            return
        with self._lock:
            self._disconnects += 1
        self.disconnected.set()

    def _pause(self, seconds: float | None) -> None:
        """Sleep, but give up at once when the server stops."""
        if seconds and seconds > 0 and self._stopping.wait(seconds):
            raise _Dropped

    # ------------------------------------------------------------------ models

    def _install(self, model: FakeModel, *, modified_ns: int | None = None) -> _Installed:
        parsed = parse_name(model.name)
        if parsed is None:
            raise ValueError(f"invalid model name {model.name!r}")
        library = self._library.get(parsed.key)
        entry = _Installed(
            model=model,
            name=parsed,
            modified_ns=time.time_ns() if modified_ns is None else modified_ns,
            digest=hashlib.sha256(f"manifest:{parsed.full}".encode()).hexdigest(),
            layers=list(library[1]) if library else [],
        )
        with self._lock:
            self._installed[parsed.key] = entry
            for digest, size in entry.layers:
                self._blobs[digest] = size
        return entry

    def _find(self, name: ModelName) -> _Installed | None:
        with self._lock:
            return self._installed.get(name.key)

    def _mark_loaded(self, entry: _Installed, keep_alive_ns: int | None) -> None:
        ttl = _DEFAULT_KEEP_ALIVE_NS if keep_alive_ns is None else keep_alive_ns
        expiry = min(time.time_ns() + ttl, 253_402_300_799 * 1_000_000_000)
        with self._lock:
            self._loaded[entry.name.key] = expiry

    def _unload(self, entry: _Installed) -> None:
        with self._lock:
            self._loaded.pop(entry.name.key, None)

    # ------------------------------------------------------------------ simple endpoints

    def _h_root(self, h: _Handler, body: bytes) -> None:
        h.send_bytes(200, b"Ollama is running", TEXT_UTF8)

    def _h_version(self, h: _Handler, body: bytes) -> None:
        h.send_json(200, {"version": self.version})

    def _h_tags(self, h: _Handler, body: bytes) -> None:
        with self._lock:
            entries = sorted(self._installed.values(), key=lambda e: -e.modified_ns)
        models = [
            {
                "name": entry.name.display(),
                "model": entry.name.display(),
                "modified_at": local_timestamp(entry.modified_ns),
                "size": entry.model.size,
                "digest": entry.digest,
                "details": entry.details(),
            }
            for entry in entries
        ]
        h.send_json(200, {"models": models})

    def _h_ps(self, h: _Handler, body: bytes) -> None:
        now = time.time_ns()
        with self._lock:
            for key in [key for key, expiry in self._loaded.items() if expiry <= now]:
                del self._loaded[key]
            loaded = [
                (self._installed[key], expiry)
                for key, expiry in self._loaded.items()
                if key in self._installed
            ]
        loaded.sort(key=lambda item: -item[1])
        models = [
            {
                "name": entry.name.display(),
                "model": entry.name.display(),
                "size": entry.model.size,
                "digest": entry.digest,
                "details": entry.details(),
                "expires_at": local_timestamp(expiry),
                "size_vram": entry.model.size,
                "context_length": entry.model.context_length,
            }
            for entry, expiry in loaded
        ]
        h.send_json(200, {"models": models})

    def _h_show(self, h: _Handler, body: bytes) -> None:
        req = decode_request(body, "ShowRequest")
        requested = req.get("model") or req.get("name") or ""
        if not requested:
            raise ApiError(400, "model is required")
        name = parse_name(requested)
        if name is None:
            raise ApiError(400, "invalid model name")
        entry = self._find(name)
        if entry is None:
            raise ApiError(404, f"model '{name.display()}' not found")
        model = entry.model
        arch = model.family
        capabilities = {"capabilities": list(model.capabilities)} if self.lists_capabilities else {}
        h.send_json(
            200,
            {
                "modelfile": (
                    '# Modelfile generated by "ollama show"\n'
                    "# To build a new Modelfile based on this, replace FROM with:\n"
                    f"# FROM {entry.name.display()}\n\n"
                    f"FROM {entry.name.display()}\n"
                    'TEMPLATE "{{ .Prompt }}"\n'
                ),
                "template": "{{ .Prompt }}",
                "details": entry.details(),
                "model_info": {
                    "general.architecture": arch,
                    "general.file_type": 2,
                    "general.parameter_count": max(1, model.size * 2),
                    "general.quantization_version": 2,
                    f"{arch}.context_length": model.context_length,
                    f"{arch}.embedding_length": 576,
                },
                **capabilities,
                "modified_at": local_timestamp(entry.modified_ns),
            },
        )

    def _h_delete(self, h: _Handler, body: bytes) -> None:
        req = decode_request(body, "DeleteRequest")
        requested = req.get("model") or req.get("name") or ""
        name = parse_name(requested)
        if name is None:
            raise ApiError(400, f"name {json.dumps(requested)} is invalid")
        with self._lock:
            entry = self._installed.pop(name.key, None)
            if entry is not None:
                self._loaded.pop(name.key, None)
                still_used = {d for e in self._installed.values() for d, _ in e.layers}
                for digest, size in entry.layers:  # prune, like OLLAMA_NOPRUNE unset
                    if digest not in still_used and self._blobs.get(digest) == size:
                        del self._blobs[digest]
        if entry is None:
            raise ApiError(404, f"model '{requested}' not found")
        h.send_bytes(200, b"", None)

    # ------------------------------------------------------------------ inference

    def _h_chat(self, h: _Handler, body: bytes) -> None:
        started = time.perf_counter_ns()
        req = decode_request(body, "ChatRequest")
        self._check_images(req)
        self._check_top_logprobs(req)
        requested = req.get("model", "")
        if not requested:
            raise ApiError(400, "model is required")
        entry = self._resolve(requested)
        messages: list[dict[str, Any]] = req.get("messages", [])
        keep_alive = req.get("keep_alive")
        if not messages and keep_alive == 0:
            self._unload(entry)
            h.send_json(200, self._chat_chunk(requested, "", done=True, done_reason="unload"))
            return
        self._check_think(req, entry, requested)
        if req.get("tools") and "tools" not in entry.model.capabilities:
            raise ApiError(400, f"{entry.name.full} does not support tools")
        options = self._schedule(entry, req)
        loaded = time.perf_counter_ns()
        if not messages:
            h.send_json(200, self._chat_chunk(requested, "", done=True, done_reason="load"))
            return
        self._run_images(req, entry)
        self._complete(h, "chat", requested, entry, messages, options, req, started, loaded)

    def _h_generate(self, h: _Handler, body: bytes) -> None:
        started = time.perf_counter_ns()
        req = decode_request(body, "GenerateRequest")
        self._check_images(req)
        self._check_top_logprobs(req)
        requested = req.get("model", "")
        if not requested:
            raise ApiError(404, "model '' not found")
        entry = self._resolve(requested)
        prompt: str = req.get("prompt", "")
        keep_alive = req.get("keep_alive")
        if not prompt and keep_alive == 0:
            self._unload(entry)
            h.send_json(200, self._generate_chunk(requested, "", done=True, done_reason="unload"))
            return
        if req.get("raw") and (req.get("template") or req.get("system") or req.get("context")):
            raise ApiError(400, "raw mode does not support template, system, or context")
        self._check_think(req, entry, requested)
        if req.get("suffix") and "insert" not in entry.model.capabilities:
            raise ApiError(400, f"{entry.name.full} does not support insert")
        options = self._schedule(entry, req)
        loaded = time.perf_counter_ns()
        if not prompt:
            h.send_json(200, self._generate_chunk(requested, "", done=True, done_reason="load"))
            return
        messages: list[dict[str, Any]] = []
        if req.get("system"):
            messages.append({"role": "system", "content": req["system"]})
        messages.append({"role": "user", "content": prompt, "images": req.get("images") or []})
        self._run_images(req, entry)
        self._complete(h, "generate", requested, entry, messages, options, req, started, loaded)

    @staticmethod
    def _check_images(req: dict[str, Any]) -> None:
        """``images`` bind as base64 ``[]byte``: anything else is gin's 400."""
        problem = _images.ollama_binding_problem(req)
        if problem is not None:
            raise ApiError(400, problem)

    def _run_images(self, req: dict[str, Any], entry: _Installed) -> None:
        """What the runner says of the images before it streams: no vision, unknown format."""
        vision = "vision" in entry.model.capabilities
        problem = _images.ollama_runner_problem(req, vision, self.images_undecodable)
        if problem is not None:
            stream = req.get("stream") is not False
            raise ApiError(500, problem, JSON_BARE if stream else JSON_UTF8)

    @staticmethod
    def _check_top_logprobs(req: dict[str, Any]) -> None:
        if not 0 <= req.get("top_logprobs", 0) <= 20:
            raise ApiError(400, "top_logprobs must be between 0 and 20")

    def _resolve(self, requested: str) -> _Installed:
        name = parse_name(requested)
        if name is None:
            raise ApiError(400, "invalid model name")
        entry = self._find(name)
        if entry is None:
            raise ApiError(404, f"model '{requested}' not found")
        return entry

    @staticmethod
    def _check_think(req: dict[str, Any], entry: _Installed, requested: str) -> None:
        think = req.get("think")
        thinks = "thinking" in entry.model.capabilities
        if think is not None and think is not False and not thinks:
            raise ApiError(400, f"{json.dumps(requested)} does not support thinking")

    @staticmethod
    def _thinks(req: dict[str, Any], entry: _Installed) -> bool:
        """A thinking model thinks unless told ``think: false`` (Ollama's default is on)."""
        return "thinking" in entry.model.capabilities and req.get("think") is not False

    @staticmethod
    def _check_format(req: dict[str, Any]) -> None:
        """``llm.Completion``: ``"json"``, a schema object, or nothing (inferred status)."""
        fmt = req.get("format")
        if fmt is None or fmt in ("json", ""):
            return
        if not isinstance(fmt, dict):
            shown = json.dumps(go_json(fmt))
            raise ApiError(500, f'invalid format: {shown}; expected "json" or a valid JSON schema')

    def _schedule(self, entry: _Installed, req: dict[str, Any]) -> dict[str, Any]:
        """What ``scheduleRunner`` checks: option types, then the load itself."""
        options: dict[str, Any] = req.get("options") or {}
        check_options(options)
        self._mark_loaded(entry, req.get("keep_alive"))
        return options

    def _plan(
        self,
        entry: _Installed,
        messages: list[dict[str, Any]],
        options: dict[str, Any],
        thinks: bool = False,
    ) -> _Plan:
        """Decide the emitted pieces and done_reason from num_predict and stop; a thinking
        model's trace comes first and counts toward ``num_predict``, as on Ollama."""
        if self.reply_pieces is not None:
            pieces = list(self.reply_pieces)
        elif entry.model.reply is not None:
            pieces = list(entry.model.reply(messages))
        else:
            pieces = default_reply(messages)
        thinking: list[str] = []
        if thinks:
            if self.thinking_pieces is not None:
                thinking = list(self.thinking_pieces)
            elif entry.model.thinking is not None:
                thinking = list(entry.model.thinking(messages))
            else:
                thinking = default_thinking(messages)
        reason = "stop"
        num_predict = int(options.get("num_predict") or -1)
        if 0 < num_predict <= len(thinking):
            thinking = thinking[:num_predict]
            return _Plan([], max(1, len(thinking)), "length", thinking)
        if num_predict > 0:
            num_predict -= len(thinking)
        if 0 < num_predict < len(pieces):
            pieces, reason = pieces[:num_predict], "length"
        consumed = len(pieces)
        stops = [s for s in options.get("stop") or [] if s]
        if stops:
            text = "".join(pieces)
            cuts = [index for index in (text.find(s) for s in stops) if index >= 0]
            if cuts:
                cut, reason = min(cuts), "stop"
                kept: list[str] = []
                position = 0
                for piece in pieces:
                    if position + len(piece) > cut:
                        kept.append(piece[: cut - position])
                        break
                    kept.append(piece)
                    position += len(piece)
                consumed = len(kept)
                pieces = [piece for piece in kept if piece]
        return _Plan(pieces, max(1, consumed + len(thinking)), reason, thinking)

    def _chat_chunk(
        self, model: str, content: str, *, done: bool, done_reason: str | None = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "model": model,
            "created_at": utc_timestamp(),
            "message": {"role": "assistant", "content": content},
            "done": done,
        }
        if done_reason:
            chunk["done_reason"] = done_reason
        return chunk

    def _generate_chunk(
        self, model: str, response: str, *, done: bool, done_reason: str | None = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "model": model,
            "created_at": utc_timestamp(),
            "response": response,
            "done": done,
        }
        if done_reason:
            chunk["done_reason"] = done_reason
        return chunk

    @staticmethod
    def _with_thinking(chunk: dict[str, Any], thinking: str) -> dict[str, Any]:
        """``message.thinking`` on a chat chunk, top-level ``thinking`` on a generate one."""
        if "message" in chunk:
            chunk["message"]["thinking"] = thinking
        else:
            chunk["thinking"] = thinking
        return chunk

    def _complete(
        self,
        h: _Handler,
        kind: str,
        requested: str,
        entry: _Installed,
        messages: list[dict[str, Any]],
        options: dict[str, Any],
        req: dict[str, Any],
        started: int,
        loaded: int,
    ) -> None:
        """Run the fake model and answer as a stream or as one object, with faults."""
        make_chunk = self._chat_chunk if kind == "chat" else self._generate_chunk
        stream = req.get("stream") is not False
        fault = self._take_fault(messages)
        if fault is not None and fault.kind == "status":
            self._send_fault(h, fault, JSON_BARE if stream else JSON_UTF8)
            return
        if self.fail_status is not None:  # the runner fails before producing anything
            raise ApiError(self.fail_status, self.error_message, JSON_BARE if stream else JSON_UTF8)
        self._check_format(req)
        plan = self._plan(entry, messages, options, self._thinks(req, entry))
        prompt_tokens = max(1, sum(len(str(m.get("content", "")).split()) + 4 for m in messages))
        prompt_done = time.perf_counter_ns()
        out = _NdjsonStream(h) if stream else None
        if stream:
            with self._lock:
                self._chunks_sent = 0
        stalled = False
        eval_start = time.perf_counter_ns()
        sent = [("thinking", piece) for piece in plan.thinking]
        sent += [("content", piece) for piece in plan.pieces]
        total = len(sent)
        for index in range(total + 1):
            if index > 0:
                self._pause(self.token_delay)
            if not stalled and self.stall_after is not None and index >= self.stall_after:
                stalled = True
                self._pause(self.stall_seconds)
            # read each time: a test may switch a fault on mid-stream
            drop_after = fault.after if fault and fault.kind == "drop" else self.drop_after
            error_after = fault.after if fault and fault.kind == "in-band" else self.error_after
            if drop_after is not None and index >= drop_after:
                raise _Dropped
            if error_after is not None and index >= error_after:
                if out is not None and out.started:
                    out.write({"error": self.error_message})
                    out.finish()
                    return
                ctype = JSON_BARE if stream else JSON_UTF8
                raise ApiError(500, self.error_message, ctype)
            if index == total:
                break
            if out is not None:
                kind_of, piece = sent[index]
                if kind_of == "content":
                    out.write(make_chunk(requested, piece, done=False))
                else:
                    out.write(self._with_thinking(make_chunk(requested, "", done=False), piece))
                with self._lock:
                    self._chunks_sent += 1
        eval_end = time.perf_counter_ns()
        final = make_chunk(
            requested,
            "" if stream else "".join(plan.pieces),
            done=True,
            done_reason=plan.done_reason,
        )
        if plan.thinking and not stream:
            self._with_thinking(final, "".join(plan.thinking))
        if kind == "generate" and not req.get("raw"):
            final["context"] = list(range(1, prompt_tokens + plan.eval_count + 1))
        final.update(
            {
                "total_duration": max(1, time.perf_counter_ns() - started),
                "load_duration": max(1, loaded - started),
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": max(1, prompt_done - loaded),
                "eval_count": plan.eval_count,
                "eval_duration": max(1, eval_end - eval_start),
            }
        )
        if out is None:
            h.send_json(200, final)
            return
        out.write(final)
        out.finish()

    def _send_fault(self, h: _Handler, fault: Fault, content_type: str) -> None:
        """An error status in Ollama's ``{"error": ...}`` body, with ``Retry-After`` if set."""
        message = _FAULT_MESSAGES.get(fault.status, self.error_message)
        headers = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
        h.send_bytes(fault.status, go_json({"error": message}).encode(), content_type, headers)

    # ------------------------------------------------------------------ pull

    def _h_pull(self, h: _Handler, body: bytes) -> None:
        req = decode_request(body, "PullRequest")
        name = parse_name(req.get("model") or req.get("name") or "")
        if name is None:
            raise ApiError(400, "invalid model name")
        stream = req.get("stream") is not False
        out = _NdjsonStream(h) if stream else None
        last: dict[str, Any] = {}

        def emit(progress: dict[str, Any]) -> None:
            nonlocal last
            last = progress
            if out is not None:
                out.write(progress)

        emit({"status": "pulling manifest"})
        with self._lock:
            found = self._library.get(name.key)
        if found is None:
            message = "pull model manifest: file does not exist"
            if out is None:
                raise ApiError(500, message, JSON_BARE)
            out.write({"error": message})
            out.finish()
            return
        layers = found[1]
        sent_here = 0
        for digest, size in layers:
            status = f"pulling {digest[7:19]}"
            with self._lock:
                have = min(self._blobs.get(digest, 0), size)
            if have >= size:
                emit({"status": status, "digest": digest, "total": size, "completed": size})
                continue
            emit(_progress(status, digest, size, have))
            while have < size:
                step = min(PULL_CHUNK_BYTES, size - have)
                limit = self.pull_drop_after_bytes
                if limit is not None:
                    step = min(step, limit - sent_here)
                    if step <= 0:
                        raise _Dropped
                self._pause(self.pull_delay)
                with self._lock:
                    have = self._blobs[digest] = self._blobs.get(digest, 0) + step
                    self._pull_bytes_sent += step
                sent_here += step
                emit(_progress(status, digest, size, have))
                if limit is not None and sent_here >= limit:
                    raise _Dropped
        emit({"status": "verifying sha256 digest"})
        emit({"status": "writing manifest"})
        existing = self._find(name)
        template = existing.model if existing else FakeModel(name.display())
        self._install(
            FakeModel(
                name.display(),
                size=existing.model.size if existing else sum(size for _, size in layers),
                family=template.family,
                parameter_size=template.parameter_size,
                quantization_level=template.quantization_level,
                reply=template.reply,
                capabilities=template.capabilities,
                context_length=template.context_length,
            )
        )
        emit({"status": "success"})
        if out is None:
            h.send_json(200, last, JSON_BARE)
        else:
            out.finish()

    # ------------------------------------------------------------------ routing

    def _routes(self) -> dict[str, dict[str, Callable[[_Handler, bytes], None]]]:
        return {
            "/": {"GET": self._h_root, "HEAD": self._h_root},
            "/api/version": {"GET": self._h_version, "HEAD": self._h_version},
            "/api/tags": {"GET": self._h_tags, "HEAD": self._h_tags},
            "/api/ps": {"GET": self._h_ps},
            "/api/show": {"POST": self._h_show},
            "/api/delete": {"DELETE": self._h_delete},
            "/api/chat": {"POST": self._h_chat},
            "/api/generate": {"POST": self._h_generate},
            "/api/pull": {"POST": self._h_pull},
        }


def _progress(status: str, digest: str, total: int, completed: int) -> dict[str, Any]:
    """A pull progress line; ``completed`` is omitted while 0 (Go ``omitempty``)."""
    line: dict[str, Any] = {"status": status, "digest": digest, "total": total}
    if completed:
        line["completed"] = completed
    return line


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(LoopbackHTTPServer):
    """Tracks open connections so ``stop()`` can cut idle keep-alive sockets too."""

    block_on_close = False
    allow_reuse_address = True
    owner: OllamaTestServer

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._track(request, True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._track(request, False)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client resetting an idle keep-alive connection is normal, not worth a traceback."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _NdjsonStream:
    """NDJSON writer, one chunk per line; headers go out with the first line, so errors
    found before it can still be answered with a real status (as gin's ``c.Stream``)."""

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler
        self._chunked = handler.request_version != "HTTP/1.0"
        self.started = False

    def write(self, obj: dict[str, Any]) -> None:
        data = (go_json(obj) + "\n").encode()
        handler = self._handler
        if not self.started:
            handler.send_response(200)
            handler.send_header("Content-Type", NDJSON)
            if self._chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            else:  # HTTP/1.0: the body ends when the connection does
                handler.close_connection = True
            handler.end_headers_safely()
            self.started = True
        handler.write_raw(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)

    def finish(self) -> None:
        if self.started and self._chunked:
            self._handler.write_raw(b"0\r\n\r\n")


_SERVER_HOSTNAME = socket.gethostname().lower()


def _host_allowed(host_header: str) -> bool:
    """``allowedHostsMiddleware`` for a loopback-bound server (DNS-rebinding guard)."""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.lower()
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return addr.is_loopback or addr.is_private or addr.is_unspecified
    if host in ("", "localhost", _SERVER_HOSTNAME):
        return True
    return host.endswith((".localhost", ".local", ".internal"))


class _Handler(BaseHTTPRequestHandler):
    """Per-connection HTTP/1.1 handler (keep-alive, chunked streams)."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    responded = False
    status = 0
    #: Set by the ``drop_after_error`` fault: the next request on this connection is cut.
    doomed: str | None = None

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def send_response(self, code: int, message: str | None = None) -> None:
        """Like Go's net/http: a Date header, no Server header."""
        self.responded = True
        self.status = code
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def end_headers_safely(self) -> None:
        try:
            self.end_headers()
        except OSError:
            self._gone()

    def write_raw(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
        except OSError:
            self._gone()

    def _gone(self) -> None:
        self.close_connection = True
        self.server.owner._note_disconnect()
        raise _ClientGone

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        # Go buffers 2 KiB before committing to a length; a bigger single write goes chunked.
        chunked = len(body) > _GO_BUFFER_BYTES and self.command != "HEAD"
        chunked = chunked and self.request_version != "HTTP/1.0"
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in headers:
            self.send_header(key, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers_safely()
        if chunked:
            self.write_raw(b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body))
        elif body and self.command != "HEAD":
            self.write_raw(body)

    def send_json(self, status: int, obj: Any, content_type: str = JSON_UTF8) -> None:
        self.send_bytes(status, go_json(obj).encode(), content_type)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _drop(self) -> None:
        """Cut the connection mid-response: no terminating chunk, the client sees EOF."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _dispatch(self) -> None:
        owner = self.server.owner
        method = self.command
        path = urlsplit(self.path).path
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        try:
            parsed: Any = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = None
        owner._record(method, path, parsed)
        self.body_model = parsed.get("model") if isinstance(parsed, dict) else None
        if self.doomed is not None:
            self.close_connection = True
            cut(self.connection, self.doomed)
            return
        self.responded = False
        self.status = 0
        try:
            if not _host_allowed(self.headers.get("Host", "")):
                self.send_bytes(403, b"", None)
                return
            if method == "OPTIONS":
                self.send_bytes(204, b"", None)
                return
            routes = owner._route_table.get(path)
            if routes is None:
                self.send_bytes(404, b"404 page not found", TEXT_BARE)
                return
            endpoint = routes.get(method)
            if endpoint is None:
                allow = ", ".join(sorted(routes))
                self.send_bytes(405, b"405 method not allowed", TEXT_BARE, [("Allow", allow)])
                return
            try:
                endpoint(self, body)
            except ApiError as exc:
                if self.responded:
                    raise
                self.send_json(exc.status, {"error": exc.message}, exc.content_type)
        except _ClientGone:
            self.close_connection = True
        except _Dropped:
            self._drop()
        except Exception as exc:  # noqa: BLE001 - a bug in this fake must not hang the client
            traceback.print_exc()
            if self.responded:
                self._drop()
            else:
                with contextlib.suppress(_ClientGone):
                    self.send_json(500, {"error": f"ollama test server: {exc!r}"})
        finally:
            if self.status >= 400 and owner.drop_after_error:
                self.doomed = owner.drop_after_error

    body_model: Any = None

    def _timed(self) -> None:
        """``_dispatch``, its start and end kept in ``timings``."""
        self.body_model = None
        start = time.monotonic()
        try:
            self._dispatch()
        finally:
            path = urlsplit(self.path).path
            self.server.owner._note_timing(self.command, path, self.body_model, start)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _timed


# --------------------------------------------------------------------------- CLI


def _bench_pieces(count: int) -> list[str]:
    words = ("lorem ", "ipsum ", "dolor ", "sit ", "amet, ", "consectetur ", "adipiscing ")
    return [words[i % len(words)] for i in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed or until ``--lifetime`` seconds pass; the URL is stdout's first line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--reply-chunks", type=int, default=None, help="pieces in every reply")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--lifetime", type=float, default=None, help="exit after N seconds")
    args = parser.parse_args(argv)

    server = OllamaTestServer(host=args.host, port=args.port)
    if args.reply_chunks is not None:
        server.reply_pieces = _bench_pieces(args.reply_chunks)
    server.token_delay = args.token_delay
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())  # exit cleanly, sockets closed
    server.start()
    print(server.url, flush=True)
    try:
        done.wait(args.lifetime)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
