"""``StreamTimer``: the books of one answer (time to first token, speed, counts, the end).

Generators hold the timer, not the stream: it keeps the stream's pieces and only a weak
reference to the stream itself, so dropping the stream still stops the source.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import GenerationError, LocalMindError
from ._answer import budget_warning, validated
from ._response import ModelResponse, Usage

if TYPE_CHECKING:
    from ._schema import OutputSchema
    from ._stream import ResponseStream

log = logging.getLogger(__name__)

#: ``on_end(response, error)``: how one answer ended (see ``StreamTimer.on_end``).
AnswerEnd = Callable[[ModelResponse | None, BaseException | None], None]


class StreamTimer:
    """Measures time to first token and duration the same way for every backend.

    Generators hold the timer, not the stream: it keeps the stream's pieces and only a
    weak reference to the stream itself.
    """

    def __init__(self, stream: ResponseStream | None = None) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self._stream = weakref.ref(stream) if stream is not None else None
        self.pieces: list[str] = stream.pieces if stream is not None else []
        #: With ``schema=``: what the finished answer is validated against.
        self.schema: OutputSchema | None = None
        #: Told once how the answer ended (the answer log listens).
        self.on_end: AnswerEnd | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def mark_piece(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def cancelled(self, usage: Usage | None = None) -> ModelResponse | None:
        """The consumer left (``close()``, a left loop, Ctrl-C): keep the partial answer."""
        return self.finish(
            finish_reason="cancelled",
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )

    def finish(
        self,
        stream: ResponseStream | None = None,
        *,
        finish_reason: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        tokens_per_second: float | None = None,
        thinking_tokens: int | None = None,
        notify: bool = True,
    ) -> ModelResponse | None:
        """Record the response on the stream (if anyone still holds it).

        Tokens/s is decode speed, after the first token, unless the backend knows better.
        Without a count from the engine (llama.cpp's server sends no usage; a stopped
        stream gets none) the streamed pieces are counted: about one token each.
        """
        if stream is None and self._stream is not None:
            stream = self._stream()
        if stream is None:
            return None
        approximate = completion_tokens is None and bool(stream.pieces)
        if approximate:
            completion_tokens = len(stream.pieces)
        end = time.perf_counter()
        ttft = None if self.first is None else self.first - self.start
        if tokens_per_second is None and completion_tokens and ttft is not None:
            decode_time = end - self.first  # type: ignore[operator]
            if completion_tokens > 1 and decode_time > 0:
                tokens_per_second = (completion_tokens - 1) / decode_time
        response = ModelResponse(
            text=stream.text,
            model=stream.model,
            backend=stream.backend,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            time_to_first_token=ttft,
            duration=end - self.start,
            tokens_per_second=tokens_per_second,
            tokens_approximate=approximate,
            thinking=stream.thinking or None,
            thinking_tokens=thinking_tokens,
        )
        response.warning = budget_warning(response)
        stream.response = response
        if notify:
            self.ended(response, None)
        return response

    def ended(self, response: ModelResponse | None, error: BaseException | None) -> None:
        """Tell ``on_end`` once; a failing listener is logged, never the user's problem."""
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            try:
                on_end(response, error)
            except LocalMindError as exc:  # a known failure (a damaged log): its message says
                log.warning("recording the answer failed: %s", exc)  # the fix; no traceback
            except Exception:  # the answer matters more than its record
                log.exception("recording the answer failed")

    def finished(self, usage: Usage | None) -> None:
        """The source ended on its own: record the answer with the engine's counts."""
        if usage is None:
            response = self.finish(
                finish_reason="stop", prompt_tokens=None, completion_tokens=None, notify=False
            )
        else:
            response = self.finish(
                finish_reason=usage.finish_reason or "stop",
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                tokens_per_second=usage.tokens_per_second,
                thinking_tokens=usage.thinking_tokens,
                notify=False,
            )
        if self.schema is not None and response is not None:
            try:
                response.parsed = validated(self.schema, response)
            except GenerationError as exc:
                self.ended(response, exc)
                raise
        self.ended(response, None)
