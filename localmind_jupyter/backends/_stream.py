"""The streaming protocol: a backend yields deltas, the base keeps every book.

A backend's ``deltas(request)`` generator yields ``Started`` once its request is sent,
then text (``str``), ``Thinking`` and ``Usage``. ``open_stream`` runs it up to
``Started`` (so set-up errors raise from ``generate_stream()``) and wraps it in a
``ResponseStream`` that times it, keeps the partial text, cuts stop strings, turns a
close, a drop or an interrupt into a "cancelled" answer and a failure into a
``GenerationError`` carrying the partial text.

The relay generator holds the stream only through ``StreamTimer``'s weak reference: no
reference cycle, so dropping the stream drops the relay at once, which closes the
backend's generator, whose ``finally`` releases the connection or the worker thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, LocalMindError
from ._response import Delta, ModelResponse, Started, Thinking, Usage
from ._stops import StopMatcher
from ._timer import AnswerEnd, StreamTimer

if TYPE_CHECKING:
    from ._schema import OutputSchema


__all__ = [
    "Delta",
    "ModelResponse",
    "ResponseStream",
    "Started",
    "StopMatcher",
    "StreamTimer",
    "Thinking",
    "Usage",
    "open_stream",
]


class _Trace(list[str]):
    """The trace's pieces; a front end's ``listener`` hears each one as it is appended."""

    listener: Callable[[str], None] | None = None

    def append(self, piece: str) -> None:
        super().append(piece)
        if self.listener is not None:
            self.listener(piece)


class ResponseStream:
    """Text pieces as they arrive; ``.response`` once exhausted; ``.close()`` stops the source.

    ``__iter__`` returns the relay generator itself, so a ``for`` loop pays for one layer
    per piece. Leaving the loop early does not stop a stream still held (it can be read
    on); ``close()``, ``with`` or dropping the stream does, read or not.
    """

    def __init__(self, model: str, backend: str) -> None:
        self.model = model
        self.backend = backend
        self.response: ModelResponse | None = None
        self.pieces: list[str] = []
        self.thinking_pieces: list[str] = _Trace()
        self._generator: Generator[str, None, None] | None = None
        self._cancel: threading.Event | None = None

    def bind(
        self, generator: Generator[str, None, None], cancel: threading.Event | None = None
    ) -> ResponseStream:
        """The pre-``deltas()`` way: a generator that keeps its own books (see ``StreamTimer``)."""
        self._generator = generator
        self._cancel = cancel
        return self

    @property
    def text(self) -> str:
        """What has arrived so far (the partial answer if stopped or failed)."""
        return "".join(self.pieces)

    @property
    def thinking(self) -> str:
        """The reasoning the model streamed apart from its answer, if any."""
        return "".join(self.thinking_pieces)

    def on_thinking(self, listener: Callable[[str], None] | None) -> None:
        """Call ``listener`` with each piece of the trace as it arrives (on the reading
        thread): the text pieces the stream yields carry none of it."""
        assert isinstance(self.thinking_pieces, _Trace)
        self.thinking_pieces.listener = listener

    def __iter__(self) -> Iterator[str]:
        assert self._generator is not None, "stream was never bound to a generator"
        return self._generator

    def __next__(self) -> str:
        assert self._generator is not None, "stream was never bound to a generator"
        return next(self._generator)

    def close(self) -> None:
        """Stop generating at the source; ``response`` then holds the partial answer."""
        if self._generator is not None:
            self._generator.close()

    def cancel(self) -> None:
        """Ask the source to stop now, from any thread; ``close()`` works on the reading one only.

        An in-process engine stops within one step of its compute, even inside a long
        prompt pass; the reading thread then sees the stream end as "cancelled".
        """
        if self._cancel is not None and self.response is None:  # finished: nothing to stop
            self._cancel.set()

    def __enter__(self) -> ResponseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NOTHING: Any = object()


def open_stream(
    source: Generator[Delta, None, None],
    model: str,
    backend: str,
    stops: list[str] | None = None,
    schema: OutputSchema | None = None,
    on_end: AnswerEnd | None = None,
) -> ResponseStream:
    """Run ``source`` up to ``Started`` and wrap it; ``stops``: strings the base cuts at;
    ``schema``: what the finished answer must validate against (into ``parsed``);
    ``on_end``: told once how the answer ended, set-up failures included."""
    stream = ResponseStream(model, backend)
    timer = StreamTimer(stream)
    timer.schema = schema
    timer.on_end = on_end
    try:
        first = next(source, _NOTHING)  # set-up errors (no such model, refused) raise here
    except BaseException as exc:
        timer.ended(None, exc)
        raise
    started = first if isinstance(first, Started) else None
    if started is not None:
        first = _NOTHING
    clock = started is not None and started.clock_from_read
    relay = _relay_stops if stops else _relay
    generator = relay(source, timer, first, clock, stream.thinking_pieces, stops or [])
    next(generator)
    return stream.bind(generator, started.cancel if started is not None else None)


def _relay(
    source: Generator[Delta, None, None],
    timer: StreamTimer,
    first: Any,
    clock: bool,
    thinking: list[str],
    stops: list[str],
) -> Generator[str, None, None]:
    """Text straight through; everything else into the books."""
    append = timer.pieces.append
    usage: Usage | None = None
    try:
        yield ""  # primed by ``open_stream``: from here on, a close or a drop is a cancel
        if clock:
            timer.start = time.perf_counter()
        if first is not _NOTHING:
            if isinstance(first, str):
                timer.mark_piece()
                append(first)
                yield first
            else:
                usage = _other(first, thinking, usage)
        for delta in source:  # up to the first text
            if isinstance(delta, str):
                timer.mark_piece()
                append(str(delta))
                yield str(delta)
                break
            usage = _other(delta, thinking, usage)
        for delta in source:  # the same iterator, on: the per-piece path, kept short
            if delta.__class__ is str:
                append(delta)
                yield delta
            elif isinstance(delta, str):
                append(str(delta))
                yield str(delta)
            else:
                usage = _other(delta, thinking, usage)
    except (GeneratorExit, KeyboardInterrupt):
        source.close()  # its ``finally`` runs now, and may update ``usage`` in place
        timer.cancelled(usage)
        raise
    except Exception as exc:  # noqa: BLE001 - every failure keeps the partial text
        raise _failure(exc, timer.text, timer) from _cause(exc)
    timer.finished(usage)


def _relay_stops(
    source: Generator[Delta, None, None],
    timer: StreamTimer,
    first: Any,
    clock: bool,
    thinking: list[str],
    stops: list[str],
) -> Generator[str, None, None]:
    """``_relay`` that holds back text which may begin a stop string, and ends at one."""
    matcher = StopMatcher(stops)
    append = timer.pieces.append
    usage: Usage | None = None
    items = source if first is _NOTHING else _prepend(first, source)
    try:
        yield ""  # primed, as in ``_relay``
        if clock:
            timer.start = time.perf_counter()
        for delta in items:
            if isinstance(delta, str):
                text = matcher.feed(str(delta))
                if text:
                    timer.mark_piece()
                    append(text)
                    yield text
                if matcher.stopped:
                    source.close()  # the engine stops; its counts stay in ``usage``
                    break
            else:
                usage = _other(delta, thinking, usage)
        tail = matcher.flush()
        if tail:
            timer.mark_piece()
            append(tail)
            yield tail
    except (GeneratorExit, KeyboardInterrupt):
        source.close()
        timer.cancelled(usage)
        raise
    except Exception as exc:  # noqa: BLE001 - every failure keeps the partial text
        raise _failure(exc, timer.text + matcher.flush(), timer) from _cause(exc)
    if matcher.stopped:
        counts = usage or Usage()
        timer.finished(Usage(counts.prompt_tokens, counts.completion_tokens, "stop"))
    else:
        timer.finished(usage)


def _prepend(first: Delta, rest: Iterator[Delta]) -> Iterator[Delta]:
    yield first
    yield from rest


def _other(delta: Any, thinking: list[str], usage: Usage | None) -> Usage | None:
    if isinstance(delta, Usage):
        return delta
    if isinstance(delta, Thinking):
        thinking.append(delta.text)
    elif not isinstance(delta, Started):
        raise TypeError(f"a backend yielded {type(delta).__name__}, not text, Thinking or Usage")
    return usage


def _failure(exc: Exception, partial: str, timer: StreamTimer) -> Exception:
    """A failure mid-answer as a ``GenerationError`` that keeps what arrived (told to
    ``on_end``); once text arrived, sending the request again is no longer a retry."""
    error: Exception
    if isinstance(exc, GenerationError):
        if not exc.partial_text:
            exc.partial_text = partial
        error = exc
    elif isinstance(exc, LocalMindError):
        error = exc
    else:
        stream = timer._stream() if timer._stream is not None else None
        who = stream.backend if stream is not None else "the backend"
        error = GenerationError(f"{who} failed mid-answer: {exc}", partial)
    if partial and isinstance(error, LocalMindError):
        error.retryable = False
    timer.ended(None, error)
    return error


def _cause(exc: Exception) -> BaseException | None:
    """Keep the chain the backend chose (``from None`` hides an SDK's noise)."""
    if isinstance(exc, LocalMindError):
        return None if exc.__suppress_context__ else exc.__cause__
    return exc
