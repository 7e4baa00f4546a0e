"""Side-by-side comparison: one prompt, the same options, several models at once.

Each target (a backend and a model) is read by its own thread, so the requests overlap in
time: a server answers them together, and in-process engines compute in parallel too
(llama.cpp computes in the reading thread and Transformers in its worker, both outside the
GIL; each loaded model has its own state, so two columns advance step by step together).
The reading threads never call the front end: they put ``CompareEvent``s on a queue, and
the calling thread hands each to ``on_event``, so a front end draws from the thread that
owns its display (and an interrupt lands where it can stop everything).

One target failing (an unknown model, a server down, an error mid-answer) is that column's
error, with its partial text; the others carry on. Cancel (an event) or an interrupt stops
every stream at the source (``ResponseStream.cancel()`` from the calling thread, ``close()``
on each reading thread) and keeps every partial answer, ``finish_reason == "cancelled"``.
Every answer goes into the answer log marked ``answer_source("compare")``.

``run_compare`` blocks its caller; a front end that must stay responsive (a widget with a
Stop button) calls it from a thread of its own and sets ``cancel`` to stop.
"""

from __future__ import annotations

import contextvars
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..backends._response import ModelResponse, failed_response
from ..errors import GenerationError, LocalMindError, OptionError
from .answer_log import answer_source

if TYPE_CHECKING:
    from ..backends._stream import ResponseStream
    from ..backends.base import BaseBackend

__all__ = [
    "CompareEvent",
    "CompareTarget",
    "EventKind",
    "check_options",
    "check_specs",
    "resolve_targets",
    "run_compare",
]

EventKind = Literal["text", "thinking", "done", "error"]

#: How often the calling thread wakes while it waits, to notice a cancel.
_TICK = 0.1
#: After a cancel, how long the streams get to wind down before the answers return.
_GRACE = 5.0


@dataclass
class CompareTarget:
    """One column: what to ask and where; ``error`` set when the spec did not resolve."""

    spec: str
    backend: BaseBackend | None
    model: str
    #: This column's own options on top of the shared ones (its chat history's ``messages``).
    options: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None

    @property
    def backend_name(self) -> str:
        return self.backend.name if self.backend is not None else self.spec.partition(":")[0]


@dataclass(frozen=True)
class CompareEvent:
    """What happened in column ``column``: a piece of the answer (``text``) or of its trace
    (``thinking``), the finished answer (``done``, also when cancelled) or its failure
    (``error``: ``response`` is the failed answer with its partial text, ``error`` why)."""

    column: int
    kind: EventKind
    text: str = ""
    response: ModelResponse | None = None
    error: str | None = None


def check_specs(models: Any) -> list[str]:
    """The model specs of a comparison, or ``OptionError`` before anything is sent."""
    if isinstance(models, str) or not isinstance(models, Sequence):
        raise OptionError(
            "models must be a list of 'backend:model' strings (as `%localmind models` lists "
            f"them), even for one; got {type(models).__name__}"
        )
    specs = list(models)
    if not specs:
        raise OptionError("models is empty: name at least one model to compare")
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise OptionError(f"each model must be a 'backend:model' string, got {spec!r:.40}")
        if spec in seen:
            raise OptionError(f"{spec} is named twice; name each model once")
        seen.add(spec)
    return specs


def resolve_targets(
    specs: Sequence[str], resolve: Callable[[str], tuple[BaseBackend, str]]
) -> list[CompareTarget]:
    """One target per spec; a spec that does not resolve is a column with its error."""
    targets = []
    for spec in specs:
        try:
            backend, model = resolve(spec)
        except LocalMindError as exc:
            name, _, model = spec.partition(":")
            targets.append(CompareTarget(spec, None, model or name, error=exc))
        else:
            targets.append(CompareTarget(spec, backend, model))
    return targets


def check_options(prompt: Any, targets: Sequence[CompareTarget], options: dict[str, Any]) -> None:
    """Bad shared options (a typo, a value out of range) raise before anything is sent; an
    option one backend refuses (a seed, a schema it cannot hold to) is that column's error.
    ``options``: shared by all; each target's own ``options`` go on top of them."""
    from ..backends._request import GenerationRequest

    if not isinstance(prompt, str) or not prompt.strip():
        raise OptionError(f"the prompt must be a non-empty string, got {prompt!r:.40}")
    seen: dict[tuple[str, str], str] = {}
    for target in targets:
        if target.backend is None:
            continue
        key = (target.backend.name, target.backend.model_key(target.model))
        if key in seen:
            raise OptionError(
                f"{target.backend.name}:{target.model} is named twice ({seen[key]} and "
                f"{target.spec}); name each model once"
            )
        seen[key] = target.spec
    extra: frozenset[str] = frozenset()
    for target in targets:
        if target.backend is not None:
            extra |= target.backend.extra_options
    own = next((t.options for t in targets if t.backend is not None), {})
    GenerationRequest.build(prompt, "", {**options, **own}, extra)
    for target in targets:
        if target.backend is None or target.error is not None:
            continue
        try:
            target.backend.build_request(prompt, target.model, **{**options, **target.options})
        except OptionError as exc:
            target.error = exc


def run_compare(
    prompt: str,
    targets: Sequence[CompareTarget],
    options: dict[str, Any],
    *,
    on_event: Callable[[CompareEvent], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[ModelResponse]:
    """Ask every target at once; one answer per target, in order. Blocks until all end.

    A ``KeyboardInterrupt`` while waiting is the same as setting ``cancel``: every stream
    stops, the partial answers come back ``"cancelled"`` (and ``on_event`` still hears how
    each column ended).
    """
    runner = _Runner(prompt, list(targets), options, cancel or threading.Event())
    with answer_source("compare"):
        runner.run(on_event)
    return runner.answers()


class _Runner:
    def __init__(
        self,
        prompt: str,
        targets: list[CompareTarget],
        options: dict[str, Any],
        cancel: threading.Event,
    ) -> None:
        self.prompt = prompt
        self.targets = targets
        self.options = options
        self.cancel = cancel
        self.events: queue.SimpleQueue[CompareEvent] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.streams: dict[int, ResponseStream] = {}
        self.results: list[ModelResponse | None] = [None] * len(targets)
        self.interrupted = False

    # --- the calling thread ---------------------------------------------------------------------
    def run(self, on_event: Callable[[CompareEvent], None] | None) -> None:
        threads = []
        for column in range(len(self.targets)):
            context = contextvars.copy_context()  # answer_source("compare") and the like
            thread = threading.Thread(
                target=context.run,
                args=(self._work, column),
                name=f"localmind-compare-{column}",
                daemon=True,
            )
            threads.append(thread)
        for thread in threads:
            thread.start()
        ended = 0
        deadline: float | None = None
        while ended < len(threads):
            try:
                if self.cancel.is_set() and deadline is None:
                    deadline = self._stop()
                if deadline is not None and time.monotonic() > deadline:
                    break  # a stream that will not stop: its column is "cancelled" as it is
                try:
                    event = self.events.get(timeout=_TICK)
                except queue.Empty:
                    continue
                if event.kind in ("done", "error"):
                    ended += 1
                if on_event is not None:
                    on_event(event)
            except KeyboardInterrupt:
                self.interrupted = True
                self.cancel.set()
        for column, result in enumerate(self.results):
            if result is None and on_event is not None:  # gave up waiting for it
                on_event(CompareEvent(column, "done", response=self._result(column)))

    def _stop(self) -> float:
        """Cancel: every stream stops at the source, wherever its reader is blocked."""
        with self.lock:
            streams = list(self.streams.values())
        for stream in streams:
            stream.cancel()
        return time.monotonic() + _GRACE

    def answers(self) -> list[ModelResponse]:
        return [self._result(column) for column in range(len(self.targets))]

    def _result(self, column: int) -> ModelResponse:
        with self.lock:
            result = self.results[column]
            stream = self.streams.get(column)
        if result is not None:
            return result
        target = self.targets[column]
        partial = ModelResponse(
            text=stream.text if stream is not None else "",
            model=target.model,
            backend=target.backend_name,
            finish_reason="cancelled",
        )
        return partial

    # --- one reading thread per target ----------------------------------------------------------
    def _work(self, column: int) -> None:
        target = self.targets[column]
        try:
            response = self._answer(column, target)
        except BaseException as exc:  # noqa: BLE001 - one column's failure is its own
            if self.cancel.is_set():  # stopped: the partial text, no error
                response = failed_response(target.backend_name, target.model, "cancelled", None)
                response.text = getattr(exc, "partial_text", "") or ""
            else:
                response = failed_response(target.backend_name, target.model, "error", exc)
        self._end(column, response)

    def _answer(self, column: int, target: CompareTarget) -> ModelResponse:
        if target.error is not None:
            raise target.error
        assert target.backend is not None
        if self.cancel.is_set():
            return failed_response(target.backend.name, target.model, "cancelled", None)
        options = {**self.options, **target.options}
        stream = target.backend.generate_stream(self.prompt, target.model, **options)
        with self.lock:
            self.streams[column] = stream
        put = self.events.put
        stream.on_thinking(lambda piece: put(CompareEvent(column, "thinking", piece)))
        try:
            if self.cancel.is_set():
                stream.cancel()
            for piece in stream:
                if piece:
                    put(CompareEvent(column, "text", piece))
                if self.cancel.is_set():
                    break
        except GenerationError as exc:
            if stream.response is None:
                raise
            # The answer ended but is not what was asked (schema): kept, marked failed.
            return dataclasses.replace(stream.response, finish_reason="error", error=str(exc))
        finally:
            stream.close()  # on the reading thread: stops the source, keeps the partial text
        if stream.response is None:
            raise GenerationError("the stream ended without a final response", stream.text)
        return stream.response

    def _end(self, column: int, response: ModelResponse) -> None:
        with self.lock:
            self.results[column] = response
        kind: EventKind = "error" if response.finish_reason == "error" else "done"
        self.events.put(CompareEvent(column, kind, response=response, error=response.error))
