"""What a backend yields (``Started``, text, ``Thinking``, ``Usage``) and the answer it makes.

Plain dataclasses, apart from the stream's machinery, so front ends and the answer log can
read a ``ModelResponse`` without importing how it was streamed.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class ModelResponse:
    """One finished answer, with the same statistics whatever backend produced it."""

    text: str
    model: str
    backend: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    time_to_first_token: float | None = None
    duration: float | None = None
    tokens_per_second: float | None = None
    #: True when the server sent no token count and the streamed pieces were counted instead.
    tokens_approximate: bool = False
    #: With ``schema=``: the validated answer (an instance of the pydantic class, else the
    #: ``dict``/``list``); None without a schema.
    parsed: Any = None
    #: The reasoning trace, kept out of ``text``; None when the model sent none.
    thinking: str | None = None
    #: Tokens spent thinking, where the server counts them apart.
    thinking_tokens: int | None = None
    #: Something the user should know about this answer (thinking used up the budget…).
    warning: str | None = None
    #: Why this answer failed (``finish_reason == "error"``): a batch keeps a failed row as
    #: such a response, so results always line up with their inputs.
    error: str | None = None
    #: Answered from a replay recording, not by the engine (``%localmind replay play``).
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a parsed pydantic object as its data; ``replayed`` only when true."""
        parsed = self.parsed
        data = asdict(dataclasses.replace(self, parsed=None))
        if not self.replayed:
            del data["replayed"]
        dump = getattr(parsed, "model_dump", None)
        data["parsed"] = dump(mode="json") if callable(dump) else parsed
        return data


def failed_response(
    backend: str, model: str, reason: str, error: BaseException | None
) -> ModelResponse:
    """The row a batch keeps for a prompt that got no answer (the partial text, if any)."""
    partial = getattr(error, "partial_text", "") or ""
    return ModelResponse(
        text=partial,
        model=model,
        backend=backend,
        finish_reason=reason,
        error=None if error is None else (str(error) or type(error).__name__),
    )


@dataclass(frozen=True)
class Started:
    """Yielded once, first: the request is sent, so later failures are mid-answer ones.

    ``cancel``: an event the engine's compute checks; ``ResponseStream.cancel()`` sets it
    from any thread. ``clock_from_read``: the engine computes only when read, so time
    counts from the first read rather than from ``generate_stream()``.
    """

    cancel: threading.Event | None = None
    clock_from_read: bool = False


@dataclass(frozen=True)
class Thinking:
    """A piece of the model's reasoning, kept apart from the answer's text."""

    text: str


@dataclass
class Usage:
    """What the engine reports; the last one yielded counts, read when the stream ends.

    An engine whose counters grow while it computes may yield one early and update it in
    place (even in its ``finally``), so a cancelled answer still says what it cost.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    #: Decode speed, when the engine measures it better than the stream's clock.
    tokens_per_second: float | None = None
    #: Of ``completion_tokens``, those spent thinking (where the server says).
    thinking_tokens: int | None = None


#: What a backend's ``deltas()`` yields.
Delta = str | Thinking | Usage | Started
