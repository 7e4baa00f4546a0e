"""The batch runner: many prompts through one backend, in order, at the backend's pace.

A server (Ollama, an OpenAI-compatible engine, Anthropic) answers several requests at
once, so ``concurrency`` worker threads each stream one row at a time (the sync clients are
thread-safe). An in-process engine that decodes several sequences per step
(``batch_size > 1``) gets chunks through ``generate_batch``; others run one row at a time.

One failed row never sinks the batch: it becomes an error answer in its place. Cancel (an
event) or an interrupt stops the rows in flight at the source (``ResponseStream.cancel()``
for in-process engines, closing the stream for servers), keeps every finished row and
returns the partial ``BatchResult``. Progress is reported as counts to a callback; showing it
is a front end's job.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from ..backends._response import ModelResponse, failed_response
from ..errors import BackendUnavailable, GenerationError, ModelNotFound, OptionError
from ._batch_inputs import BatchInputs, prepare_inputs
from ._batch_result import BatchProgress, BatchResult, ProgressCallback
from .answer_log import answer_source, request_key
from .replay import playing, record_answer
from .retry import RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from ..backends._stream import ResponseStream
    from ..backends.base import BaseBackend
    from ..config import LocalMindConfig
    from .answer_log import AnswerLog

__all__ = [
    "BatchInputs",
    "BatchProgress",
    "BatchResult",
    "ProgressCallback",
    "check_concurrency",
    "default_concurrency",
    "prepare_inputs",
    "run_batch",
]

log = logging.getLogger(__name__)

#: How often the waiting thread looks at the workers and reports progress.
_TICK = 0.1
#: After a cancel, how long the rows in flight get to wind down before the result returns.
_GRACE = 3.0
#: Rows in a row that failed for the whole backend (server down, key refused, no such model)
#: before the batch stops sending: the other 5,000 rows would only fail the same way.
_HALT_AFTER = 3


def check_concurrency(value: Any) -> int | None:
    """``concurrency=``: None (the backend's default) or an int >= 1, else ``OptionError``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"concurrency must be a whole number of requests, got {value!r:.40}")
    if value < 1:
        raise OptionError(f"concurrency must be at least 1, got {value}")
    return value


def default_concurrency(backend: BaseBackend, config: LocalMindConfig | None) -> int:
    """``backends.NAME.concurrency`` from config.yaml, else the backend type's default."""
    spec = config.backends.get(backend.name) if config is not None else None
    configured = getattr(spec, "concurrency", None)
    return configured or backend.default_concurrency


def run_batch(
    backend: BaseBackend,
    model: str,
    inputs: BatchInputs,
    options: dict[str, Any],
    *,
    concurrency: int,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    log: AnswerLog | None = None,
    resume: bool = True,
    retry: RetryPolicy | None = None,
) -> BatchResult:
    """Answer every prompt of ``inputs``; see the module docstring. Blocks until done.

    Bad options raise ``OptionError`` before any request (checked once, on the first
    prompt). A ``KeyboardInterrupt`` while waiting is the same as setting ``cancel``.
    ``log`` with ``resume``: rows whose identical request has a successful answer in the
    log are answered from it; only the others are sent. ``retry``: how a row whose request
    failed retryably (429, 5xx, a connection lost before any text) is sent again.
    """
    sample = inputs.sample_row()
    request = backend.build_request(
        inputs.prompts[sample], model, **inputs.options_for(sample, options)
    )
    runner = _Runner(backend, model, inputs, options, cancel or threading.Event(), on_progress)
    runner.policy = retry or RetryPolicy()
    runner.resumable = log is not None
    with answer_source("batch"):
        if log is not None and resume and not playing():  # playing: rows from the recording
            runner.answer_from(log)
        runner.run(concurrency)
    return BatchResult(
        runner.snapshot(),
        backend=backend.name,
        model=model,
        index=inputs.index,
        schema=request.output_schema,
        cancelled=runner.interrupted,
        elapsed=time.perf_counter() - runner.start,
        retries=runner.retries,
        cached=runner.cached,
        resumable=log is not None,
    )


class _Runner:
    """The books of one batch: answers by row, counts, the streams in flight."""

    def __init__(
        self,
        backend: BaseBackend,
        model: str,
        inputs: BatchInputs,
        options: dict[str, Any],
        cancel: threading.Event,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.backend = backend
        self.model = model
        self.inputs = inputs
        self.prompts = inputs.prompts
        self.options = options
        self.cancel = cancel
        self.on_progress = on_progress
        self.answers: list[ModelResponse | None] = [None] * len(self.prompts)
        self.lock = threading.Lock()
        self.streams: dict[int, ResponseStream] = {}
        self.done = self.errors = self.retries = self.cached = 0
        self.interrupted = False
        self.start = time.perf_counter()
        self._reported: tuple[int, int, int] | None = None
        self.policy = RetryPolicy()
        #: Rows in a row lost to a failure of the whole backend, and why the batch then stopped.
        self.backend_failures = 0
        self.halted: str | None = None
        self.resumable = False

    def answer_from(self, log: AnswerLog) -> None:
        """Resume: the rows the log has a successful answer for (one query for all keys)."""
        name = self.backend.name
        requests = [
            self.backend.build_request(p, self.model, **self.inputs.options_for(row, self.options))
            for row, p in enumerate(self.prompts)
        ]
        keys = [request_key(name, r) for r in requests]
        found = log.answered(keys)
        if not found:
            return
        for row, (key, request) in enumerate(zip(keys, requests, strict=True)):
            if key in found:
                answer = log.cached(name, request)
                if answer is not None:
                    record_answer(self.backend, request, answer, None)  # replay's record mode
                    self.answers[row] = answer
                    self.done += 1
                    self.cached += 1

    # --- the waiting thread ---------------------------------------------------------------------
    def run(self, concurrency: int) -> None:
        todo = [i for i, answer in enumerate(self.answers) if answer is None]
        try:
            self._report(force=True)
            if todo:
                chunk = self.backend.batch_size
                if playing():  # replay answers each row from the recording, one by one
                    chunk = 1
                if chunk > 1 and self.inputs.images is None:  # rows with images: one by one
                    jobs = [self._chunks(todo, chunk)]
                else:
                    rows = iter(todo)
                    jobs = [lambda: self._rows(rows)] * min(concurrency, len(todo))
                self._wait(jobs)
        except KeyboardInterrupt:  # outside the wait (a report): nothing in flight to stop
            self.interrupted = True
            self.cancel.set()
        self._report(force=True, finished=True)

    def _wait(self, jobs: list[Callable[[], None]]) -> None:
        pool = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="localmind-batch")
        # Each worker runs in a copy of this context: answer_source("batch") and the like.
        futures: set[Future[None]] = {
            pool.submit(contextvars.copy_context().run, job) for job in jobs
        }
        try:
            while futures:
                finished, futures = wait(futures, timeout=_TICK, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()  # a bug in the runner itself: raise it, not hide it
                if self.cancel.is_set():
                    self._stop(futures)
                    return
                self._report()
        except KeyboardInterrupt:
            self._stop(futures)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _stop(self, futures: set[Future[None]]) -> None:
        """Cancel or interrupt: stop the rows in flight at the source, wait a little for them."""
        self.interrupted = True
        self.cancel.set()
        with self.lock:
            streams = list(self.streams.values())
        for stream in streams:
            stream.cancel()  # an in-process engine stops within one step of its compute
        deadline = time.monotonic() + _GRACE
        while futures and time.monotonic() < deadline:
            try:
                _, futures = wait(futures, timeout=_TICK)
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting at once
                break

    def _report(self, *, force: bool = False, finished: bool = False) -> None:
        if self.on_progress is None:
            return
        with self.lock:
            counts = (self.done, self.errors, self.retries)
        if not force and counts == self._reported:
            return
        self._reported = counts
        progress = BatchProgress(
            done=counts[0],
            total=len(self.prompts),
            errors=counts[1],
            retries=counts[2],
            cached=self.cached,
            elapsed=time.perf_counter() - self.start,
            finished=finished,
            cancelled=finished and self.interrupted,
        )
        try:
            self.on_progress(progress)
        except Exception:  # a broken display must not lose the answers
            log.exception("reporting batch progress failed")

    def snapshot(self) -> list[ModelResponse]:
        """The answers by row; a row not answered is a "cancelled" answer (cancel), or an
        error saying it was not sent (the batch stopped on a failing backend)."""
        with self.lock:
            answers = list(self.answers)
        if self.halted is not None:
            unsent: ModelResponse = failed_response(
                self.backend.name, self.model, "error", OptionError(self.halted)
            )
        else:
            unsent = failed_response(self.backend.name, self.model, "cancelled", None)
        return [a if a is not None else dataclasses.replace(unsent) for a in answers]

    # --- the workers ----------------------------------------------------------------------------
    def _record(self, row: int, answer: ModelResponse) -> None:
        with self.lock:
            if self.answers[row] is not None:
                return
            self.answers[row] = answer
            if answer.finish_reason != "cancelled":
                self.done += 1
            if answer.finish_reason == "error":
                self.errors += 1

    def _rows(self, rows: Iterator[int]) -> None:
        """One worker: take the next row, answer it, until none is left or cancel is set."""
        while not self.cancel.is_set() and self.halted is None:
            with self.lock:
                row = next(rows, None)
            if row is None:
                return
            self._record(row, self._answer(row))

    def _chunks(self, todo: list[int], size: int) -> Callable[[], None]:
        def work() -> None:
            for start in range(0, len(todo), size):
                if self.cancel.is_set():
                    return
                rows = todo[start : start + size]
                answers = self.backend.generate_batch(
                    [self.prompts[i] for i in rows], self.model, cancel=self.cancel, **self.options
                )
                for row, answer in zip(rows, answers, strict=True):
                    self._record(row, answer)

        return work

    def _answer(self, row: int) -> ModelResponse:
        """One row's answer, or the error answer in its place; never raises for the row."""
        try:
            answer = call_with_retries(
                lambda: self._attempt(row), self.policy, cancel=self.cancel, on_retry=self._retried
            )
        except Exception as exc:  # noqa: BLE001 - one bad row must not sink the batch
            reason = "cancelled" if self.cancel.is_set() else "error"
            if reason == "error" and isinstance(exc, (BackendUnavailable, ModelNotFound)):
                self._backend_failed(exc)
            return failed_response(self.backend.name, self.model, reason, exc)
        with self.lock:
            self.backend_failures = 0
        return answer

    def _backend_failed(self, error: Exception) -> None:
        """Stop sending once several rows in a row failed for the whole backend."""
        with self.lock:
            self.backend_failures += 1
            if self.backend_failures < _HALT_AFTER or self.halted is not None:
                return
            self.halted = (
                f"not sent: the batch stopped after {_HALT_AFTER} rows in a row failed with "
                f"'{error}'; fix that and run it again (answered rows are kept"
                + (", and a rerun answers them from the log)" if self.resumable else ")")
            )

    def _retried(self, attempt: int, error: BaseException, delay: float) -> None:
        with self.lock:
            self.retries += 1

    def _attempt(self, row: int) -> ModelResponse:
        """Stream one answer, reading until it ends or cancel is set (then close it)."""
        options = self.inputs.options_for(row, self.options)
        stream = self.backend.generate_stream(self.prompts[row], self.model, **options)
        with self.lock:
            self.streams[row] = stream
        try:
            for _ in stream:
                if self.cancel.is_set():
                    break
        except GenerationError as exc:
            if stream.response is None:
                raise
            # The answer ended but is not what was asked (schema): keep it, marked failed.
            return dataclasses.replace(stream.response, finish_reason="error", error=str(exc))
        finally:
            stream.close()  # after a cancel: stops the source (the connection closes)
            with self.lock:
                self.streams.pop(row, None)
        if stream.response is None:
            raise GenerationError("the stream ended without a final response", stream.text)
        return stream.response
