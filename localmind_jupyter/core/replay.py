"""Replay: record a lesson's answers once, play them anywhere (no server, no key, no network).

Built on the answer log: a request is identified by its log key (:func:`request_key`:
backend, model, the full chat messages, image hashes, every answer-changing option).

- **record**: every successful answer is appended to the recording (what the log keeps of
  it, redacted the same way).
- **play**: an identical request is answered from the recording, streamed at
  ``replay_pace`` characters per second, and the backend is never contacted; a request
  never recorded raises :class:`NotRecorded` naming the closest recorded prompt.
- **off**: nothing (the default).

The loader points each backend's ``answer_provider`` at :func:`provide`; the answer log (or,
with ``log: false``, the backend's sink) tells :func:`record_answer` of every answer. The
mode starts from ``LOCALMIND_REPLAY``; the file is ``LOCALMIND_REPLAY_FILE``, else the
notebook's ``NAME.localmind.jsonl`` (a front end tells :func:`set_notebook`), else
``./localmind-replay.jsonl``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends._response import Started, Thinking, Usage
from ..errors import OptionError
from ._replay_file import (
    FORMAT_VERSION,
    Recording,
    ReplayError,
    ReplayWarning,
    append_answer,
    check_writable,
    read_recording,
    shown,
    stamp_of,
)

if TYPE_CHECKING:
    from ..backends._request import GenerationRequest
    from ..backends._response import Delta, ModelResponse
    from ..backends._stream import ResponseStream
    from ..backends.base import BaseBackend

__all__ = [
    "FORMAT_VERSION",
    "MODES",
    "NotRecorded",
    "ReplayError",
    "ReplayWarning",
    "provide",
    "record_answer",
    "replay_state",
    "set_mode",
    "set_notebook",
]

MODES = ("off", "record", "play")
#: Characters per second a played answer streams at, unless configured (readable, not slow).
DEFAULT_PACE = 200.0
DEFAULT_FILE = "localmind-replay.jsonl"
SUFFIX = ".localmind.jsonl"


class NotRecorded(ReplayError):
    """Play mode, and this request is not in the recording: it was not sent."""


class ReplayState:
    """This process's replay mode and file (one per kernel, shared by every front end)."""

    def __init__(self) -> None:
        mode = (os.environ.get("LOCALMIND_REPLAY") or "off").strip().lower()
        self.mode = mode if mode in MODES else "off"
        self.bad_env = None if mode in MODES else mode
        #: A file named with ``replay record|play PATH``; None: the default file.
        self.explicit: Path | None = None
        #: The notebook's path, when a front end knows it.
        self.notebook: str | None = None
        self._recording: Recording | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The recording file: named, else ``LOCALMIND_REPLAY_FILE``, else per notebook."""
        return self.where()[0]

    def where(self) -> tuple[Path, str]:
        """The file and why that one (for ``%localmind replay``)."""
        if self.explicit is not None:
            return self.explicit, "named"
        env = os.environ.get("LOCALMIND_REPLAY_FILE")
        if env:
            return Path(env).expanduser(), "LOCALMIND_REPLAY_FILE"
        notebook = self.notebook or os.environ.get("JPY_SESSION_NAME")
        if notebook:
            return recording_path_for(notebook), "next to the notebook"
        return Path.cwd() / DEFAULT_FILE, "no notebook known: the working folder"

    def recording(self) -> Recording:
        """The recording, read again when the file changed since (record, then play)."""
        path = self.path
        with self._lock:
            current = self._recording
            if current is not None and current.path == path:
                try:
                    if stamp_of(path) == current.stamp:
                        return current
                except OSError:
                    pass
            self._recording = read_recording(path)
            return self._recording

    def count(self) -> int | None:
        """How many answers the file holds; None when there is none to read."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ReplayWarning)
                return len(self.recording().answers)
        except ReplayError:
            return None


def recording_path_for(notebook: str | os.PathLike[str]) -> Path:
    """``lesson.ipynb`` -> ``lesson.localmind.jsonl`` in the same folder.

    A relative path that does not exist from here (the server's root, not the kernel's
    folder) is taken as the notebook's name in the working folder.
    """
    path = Path(notebook).expanduser()
    if not path.is_absolute() and not path.exists():
        path = Path.cwd() / path.name
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(stem + SUFFIX)


_STATE: ReplayState | None = None
_STATE_LOCK = threading.Lock()


def replay_state() -> ReplayState:
    """The process's state, made on first use from the environment."""
    global _STATE
    with _STATE_LOCK:
        if _STATE is None:
            _STATE = ReplayState()
        return _STATE


def reset_state() -> None:
    """Forget the mode and file: the next use reads the environment again (tests)."""
    global _STATE
    with _STATE_LOCK:
        _STATE = None


def set_notebook(path: str | None) -> None:
    """The notebook this process runs, for the per-notebook file (None: unknown)."""
    replay_state().notebook = path or None


def set_mode(mode: str, path: str | os.PathLike[str] | None = None) -> ReplayState:
    """Switch to ``mode``; ``path`` names the file. Checks now what would fail later:
    play reads the file (missing, newer format), record checks it can be written."""
    mode = str(mode).strip().lower()
    if mode not in MODES:
        raise OptionError(f"replay mode must be one of {', '.join(MODES)}, got {mode!r:.40}")
    state = replay_state()
    explicit = Path(path).expanduser() if path is not None else state.explicit
    if explicit is not None and not explicit.is_absolute():
        explicit = Path.cwd() / explicit
    target = explicit if explicit is not None else state.path
    recording = None
    if mode == "play":
        recording = read_recording(target)
    elif mode == "record":
        check_writable(target)
    state.explicit = explicit
    if recording is not None:
        state._recording = recording  # its warnings were shown once, now
    state.mode = mode
    state.bad_env = None
    return state


def playing() -> bool:
    return replay_state().mode == "play"


# --- play ---------------------------------------------------------------------------------------
def pace() -> float:
    """Characters per second: ``LOCALMIND_REPLAY_PACE``, else the config's ``replay_pace``."""
    raw = os.environ.get("LOCALMIND_REPLAY_PACE")
    if raw is None or not raw.strip():
        from ..config import load_config

        try:
            return float(getattr(load_config(), "replay_pace", DEFAULT_PACE))
        except Exception:  # noqa: BLE001 - a broken config is reported where it is used
            return DEFAULT_PACE
    if raw.strip().lower() in {"0", "off", "none", "false"}:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise OptionError(
            f"LOCALMIND_REPLAY_PACE must be characters per second (0: at once), got {raw!r:.40}"
        ) from None
    return max(0.0, value)


def provide(backend: BaseBackend, request: GenerationRequest) -> ResponseStream | None:
    """In play mode, the recorded answer as a stream (the backend is not contacted); else None."""
    state = replay_state()
    if state.mode != "play":
        return None
    from .answer_log import request_key

    recording = state.recording()
    answer = recording.answers.get(request_key(backend.name, request))
    if answer is None:
        raise NotRecorded(_not_recorded(recording, backend, request))
    return _stream(backend, request, answer, pace())


def _not_recorded(recording: Recording, backend: BaseBackend, request: GenerationRequest) -> str:
    spec = f"{backend.name}:{request.model}"
    prompts = {a["prompt"]: a for a in recording.answers.values()}
    start = (
        f"replay is playing {shown(recording.path)}, which has no answer to this request "
        f"({spec}, prompt {_short(request.prompt)}); it was not sent."
    )
    advice = (
        " Record it: `%localmind replay record`, run the cell, then `%localmind replay play`;"
        " or send it for real: `%localmind replay off`."
    )
    if not prompts:
        return f"{start} The recording holds no answers.{advice}"
    closest = difflib.get_close_matches(request.prompt, list(prompts), n=1, cutoff=0.0)
    best = prompts[closest[0]] if closest else next(iter(prompts.values()))
    if best["prompt"] == request.prompt:
        other = f"{best['backend']}:{best['model']}"
        why = (
            f" The same prompt was recorded with {other}"
            + (" and other options or chat history" if other == spec else "")
            + ": a request is identical only with the same model, options and history."
        )
        return start + why + advice
    return f"{start} The closest recorded prompt: {_short(best['prompt'])}.{advice}"


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(str(text).split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


_PIECES = re.compile(r"\S+\s*|\s+")


def pieces(text: str, pace: float) -> list[str]:
    """Word by word at a readable pace; everything at once with pace 0."""
    if not text:
        return []
    return [text] if pace <= 0 else _PIECES.findall(text)


def _deltas(answer: dict[str, Any], speed: float, cancel: threading.Event) -> Generator[Delta]:
    yield Started(cancel=cancel)
    start, sent = time.perf_counter(), 0
    for kind, text in (("thinking", answer.get("thinking") or ""), ("text", answer["answer"])):
        for piece in pieces(str(text), speed):
            if cancel.is_set():
                yield Usage(finish_reason="cancelled")
                return
            sent += len(piece)
            if speed > 0:
                delay = start + sent / speed - time.perf_counter()
                if delay > 0:
                    cancel.wait(delay)
            yield Thinking(piece) if kind == "thinking" else piece
    yield Usage(
        prompt_tokens=_int(answer.get("prompt_tokens")),
        completion_tokens=_int(answer.get("completion_tokens")),
        finish_reason=str(answer.get("finish_reason") or "stop"),
        tokens_per_second=_float(answer.get("tokens_per_second")),
        thinking_tokens=_int(answer.get("thinking_tokens")),
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _stream(
    backend: BaseBackend, request: GenerationRequest, answer: dict[str, Any], speed: float
) -> ResponseStream:
    """The recorded answer through the same stream machinery as a live one: timing, stops,
    cancel, and ``parsed`` validated again against the request's schema."""
    from ..backends._stream import open_stream

    sink = backend.answer_sink

    def on_end(response: ModelResponse | None, error: BaseException | None) -> None:
        if response is not None:
            response.replayed = True
            response.model = str(answer.get("model") or response.model)
            response.tokens_approximate = bool(answer.get("tokens_approximate"))
        if sink is not None:
            sink(backend, request, response, error)

    model = str(answer.get("model") or request.model)
    deltas = _deltas(answer, speed, threading.Event())
    return open_stream(deltas, model, backend.name, None, request.output_schema, on_end)


# --- record -------------------------------------------------------------------------------------
def record_answer(
    backend: BaseBackend,
    request: GenerationRequest,
    response: ModelResponse | None,
    error: BaseException | None,
) -> None:
    """In record mode, append a successful answer (an ``AnswerSink``); a failed write warns
    (the answer itself is shown anyway)."""
    state = replay_state()
    if state.mode != "record" or response is None or getattr(response, "replayed", False):
        return
    from ._log_rows import COLUMNS, UNSERVED, build_row
    from .answer_log import current_source, request_key

    if error is not None or response.error or response.finish_reason in UNSERVED:
        return
    name = getattr(backend, "name", str(backend))
    kind = getattr(backend, "type_name", type(backend).__name__)
    row = dict(
        zip(
            COLUMNS,
            build_row(
                request_key(name, request),
                current_source(),
                name,
                kind,
                request,
                response,
                None,
            ),
            strict=True,
        )
    )
    for column in ("messages", "options", "parsed"):
        if row[column] is not None:
            row[column] = json.loads(row[column])
    row.pop("ok", None)
    row.pop("error", None)
    path = state.path
    try:
        append_answer(path, row)
    except OSError as exc:
        warnings.warn(
            f"replay: could not record the answer in {shown(path)}: "
            f"{getattr(exc, 'strerror', None) or exc}; name a writable file with "
            "`%localmind replay record PATH`",
            ReplayWarning,
            stacklevel=2,
        )
