"""Ollama's HTTP API as data: the JSON shapes it sends and takes, and the chat body.

Typed once here (from Ollama's docs/api.md) so the client in ``ollama.py`` is checked
against them; at run time they are the plain dictionaries ``json`` gives. Nothing here
does I/O: ``ollama.py`` sends and reads, this module says what the bytes mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypedDict

from . import _ollama_names
from ._retry_hints import retryable_status
from .base import Usage

if TYPE_CHECKING:
    import httpx

    from ..core.images import ImageLimits
    from ._request import GenerationRequest
    from .contracts import InstalledModel


class VersionAnswer(TypedDict):
    """``GET /api/version``."""

    version: str


class TagsAnswer(TypedDict, total=False):
    """``GET /api/tags``: the installed models (name, size, digest, details)."""

    models: list[InstalledModel] | None


class ChatMessage(TypedDict, total=False):
    role: str
    content: str
    thinking: str
    #: Base64 of each image the (user) message carries, prepared to the backend's limits.
    images: list[str]


class ChatChunk(TypedDict, total=False):
    """One NDJSON line of ``POST /api/chat``; the last has ``done`` and the counters."""

    model: str
    created_at: str
    message: ChatMessage
    done: bool
    done_reason: str
    #: Nanoseconds.
    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int
    #: In-band failure after the stream began (HTTP 200 already sent).
    error: str


class ChatOptions(TypedDict, total=False):
    temperature: float
    top_p: float
    seed: int
    num_predict: int
    stop: list[str]
    #: The context window the model is loaded with (a pass-through option).
    num_ctx: int


class ChatBody(TypedDict, total=False):
    """What ``POST /api/chat`` takes (``messages: []`` only loads or unloads the model)."""

    model: str
    messages: list[ChatMessage]
    stream: bool
    options: ChatOptions
    keep_alive: str | float
    #: ``"json"``: any JSON; a JSON schema: output constrained to it.
    format: Literal["json"] | dict[str, Any]
    #: On, off, or a level (gpt-oss); absent: the model's default.
    think: bool | str


class ShowBody(TypedDict):
    """What ``POST /api/show`` takes."""

    model: str


class ShowAnswer(TypedDict, total=False):
    """``POST /api/show``: what this backend reads of it."""

    #: ``completion``, ``vision``, ``tools``, ``thinking``...; absent before Ollama 0.6.4.
    capabilities: list[str]


class PullBody(TypedDict):
    """What ``POST /api/pull`` takes."""

    model: str
    stream: bool


class PullEvent(TypedDict, total=False):
    """One NDJSON line of ``POST /api/pull``: a status, per-layer bytes, or an error."""

    status: str
    digest: str
    total: int
    completed: int
    error: str


def chat_body(
    request: GenerationRequest, keep_alive: str | float | None, limits: ImageLimits
) -> ChatBody:
    """The streaming ``/api/chat`` body; ``keep_alive``: the setting, unless the request's.

    A user turn with images carries them as ``images`` (base64, prepared to ``limits``),
    history turns too; its text goes as it is (``[image N]`` markers included: Ollama puts
    the images before the text in the prompt itself).
    """
    options: ChatOptions = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.seed is not None:
        options["seed"] = request.seed
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.stop:
        options["stop"] = request.stop
    if request.extra.get("num_ctx") is not None:
        options["num_ctx"] = request.extra["num_ctx"]
    body: ChatBody = {"model": request.model, "messages": messages(request, limits), "stream": True}
    if options:
        body["options"] = options
    keep_alive = request.extra.get("keep_alive", keep_alive)
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    if request.output_schema is not None:
        body["format"] = request.output_schema.json_schema
    elif request.json_mode:
        body["format"] = "json"
    elif request.extra.get("format") is not None:
        body["format"] = request.extra["format"]
    if request.think is not None:
        body["think"] = request.think
    return body


def messages(request: GenerationRequest, limits: ImageLimits) -> list[ChatMessage]:
    """The turns as Ollama takes them: ``images`` only on turns that have some."""
    out: list[ChatMessage] = []
    for turn in request.chat_turns():
        message: ChatMessage = {"role": turn["role"], "content": turn["content"]}
        if turn.get("images"):
            message["images"] = [image.prepared(limits).base64() for image in turn["images"]]
        out.append(message)
    return out


def load_body(model: str, keep_alive: str | float | None) -> ChatBody:
    """An empty chat: Ollama loads the model (``keep_alive=0``: unloads it) and answers."""
    body: ChatBody = {"model": model, "messages": []}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


def final_usage(final: ChatChunk) -> Usage:
    """The last chunk's counters; Ollama's own decode speed (``eval_duration`` is in ns)."""
    eval_count = final.get("eval_count")
    eval_duration = final.get("eval_duration")
    return Usage(
        prompt_tokens=final.get("prompt_eval_count"),
        completion_tokens=eval_count,
        finish_reason=final.get("done_reason"),
        tokens_per_second=eval_count / eval_duration * 1e9
        if eval_count and eval_duration
        else None,
    )


class PullProgress:
    """``/api/pull`` events summed across layers: one overall (completed, total)."""

    def __init__(self) -> None:
        self.status = "pulling manifest"
        self._layers: dict[str, tuple[int, int]] = {}  # digest -> (completed, total)

    def update(self, event: PullEvent) -> None:
        self.status = event.get("status", self.status)
        digest = event.get("digest")
        if digest and "total" in event:
            self._layers[digest] = (event.get("completed", 0), event["total"])

    @property
    def completed(self) -> int:
        return sum(c for c, _ in self._layers.values())

    @property
    def total(self) -> int | None:
        return sum(t for _, t in self._layers.values()) or None

    @property
    def phase(self) -> str:
        return _ollama_names.phase(self.status)


def no_such_route(response: httpx.Response) -> bool:
    """404/405 without Ollama's ``{"error": ...}`` body: the server lacks the endpoint itself."""
    if response.status_code not in {404, 405}:
        return False
    try:
        data = response.json()
    except ValueError:
        return True
    return not (isinstance(data, dict) and isinstance(data.get("error"), str))


def error_text(response: httpx.Response) -> str:
    """The ``error`` of an Ollama error body, or the start of whatever else came back."""
    try:
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return str(data["error"])
    except ValueError:
        pass
    text = response.text.strip()
    return text[:200] or f"HTTP {response.status_code} with an empty body"


def short(exc: BaseException | None) -> str:
    """The first line of an exception, for messages (httpx's can run long)."""
    text = str(exc) if exc else ""
    return text.splitlines()[0][:160] if text else type(exc).__name__


#: Ollama's 500s that no resend fixes (the model cannot fit, the file is broken).
_PERMANENT = ("requires more system memory", "unable to load model", "invalid file magic")
#: Words of an error that says "not now": a full queue (Ollama's 503), an overload.
_TRANSIENT = ("server busy", "overloaded", "rate limit", "too many requests", "try again")


def transient_status(status: int, message: str) -> bool:
    """An error status after which the same request may succeed (429, most 5xx)."""
    text = message.lower()
    return retryable_status(status) and not any(phrase in text for phrase in _PERMANENT)


def transient_text(message: str) -> bool:
    """An in-band error line that says "not now" rather than "never"."""
    text = message.lower()
    return any(phrase in text for phrase in _TRANSIENT)
