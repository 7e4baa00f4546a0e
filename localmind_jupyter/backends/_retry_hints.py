"""Which failures are worth sending again, and how long the server asked to wait.

A backend marks the ``LocalMindError`` it raises: ``retryable`` when the same request may
succeed later (the server was down or dropped the connection before any text, timed out,
answered 429 or a 5xx, or reported an overload in the stream), ``retry_after`` from the
answer's ``Retry-After``. ``core.retry`` decides whether and when to send again; the base
clears ``retryable`` once text of the answer arrived, so a generation is never run twice.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import LocalMindError

__all__ = ["RETRY_STATUSES", "mark", "retry_after", "retryable_status"]

ErrorT = TypeVar("ErrorT", bound=LocalMindError)

#: HTTP statuses that say "not now" rather than "never": request timeout, too many
#: requests, and the server-side failures (Anthropic's 529 "overloaded" among them).
RETRY_STATUSES = frozenset({408, 429})


def retryable_status(status: int) -> bool:
    """An HTTP status after which the same request may succeed."""
    return status in RETRY_STATUSES or 500 <= status <= 599


def mark(error: ErrorT, retryable: bool = True, after: float | None = None) -> ErrorT:
    """``error`` with ``retryable`` (and ``retry_after``, when the server said) set on it."""
    error.retryable = retryable
    if after is not None:
        error.retry_after = after
    return error


def retry_after(headers: Mapping[str, str] | Any | None) -> float | None:
    """Seconds from ``Retry-After`` (seconds or an HTTP date), or OpenAI's ``retry-after-ms``.

    ``headers``: an httpx ``Headers`` (case-insensitive ``get``) or a mapping. None when the
    server said nothing usable; a date already past gives 0.
    """
    if headers is None:
        return None
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if not isinstance(value, str) or not value.strip():
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None
