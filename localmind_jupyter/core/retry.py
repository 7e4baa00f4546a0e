"""Send a failed request again, but only when the failure said "not now" rather than "never".

Backends mark what is worth another try (``LocalMindError.retryable``: a dropped or refused
connection before any text, a timeout, HTTP 429, a 5xx, an in-band overload) and how long
the server asked to wait (``retry_after``, from ``Retry-After``). This module knows nothing
of backends: it calls, waits with exponential backoff and jitter, and calls again, a bounded
number of times. A batch of thousands of rows against a busy server stays polite and keeps
going; one answer that streamed text is never sent twice (the base clears ``retryable``).
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import OptionError

__all__ = ["RetryPolicy", "backoff_delay", "call_with_retries", "retry_delay"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``on_retry(attempt, error, delay)``: attempt ``attempt`` (1 = the first call) failed with
#: ``error``; the next starts after ``delay`` seconds.
RetryCallback = Callable[[int, BaseException, float], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try and how long to wait in between.

    The n-th wait (n = 1, 2, ...) is drawn from ``[c * (1 - jitter), c]`` with
    ``c = min(max_delay, base_delay * 2 ** (n - 1))``: ``jitter=1`` is "full jitter" (0 to c),
    ``0`` none. Jitter spreads the retries of many rows so they do not hit the server in
    step. A server's ``Retry-After`` wins when longer, even above ``max_delay``; one asking
    for more than ``max_retry_after`` seconds (a quota spent for the day) is not waited for:
    the error is raised at once, since an earlier try would only be refused again.
    """

    #: Calls in all, the first included (1: never retry).
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise OptionError(
                f"retry max_attempts must be a whole number of at least 1 (1: no retries), "
                f"not {attempts!r}"
            )
        for name in ("base_delay", "max_delay", "jitter", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise OptionError(f"retry {name} must be a number of seconds, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise OptionError(f"retry {name} must be 0 or more and finite, not {value!r}")
        if self.max_delay < self.base_delay:
            raise OptionError(
                f"retry max_delay ({self.max_delay:g} s) must not be below base_delay "
                f"({self.base_delay:g} s)"
            )
        if self.jitter > 1:
            raise OptionError(f"retry jitter is a fraction from 0 to 1, not {self.jitter!r}")


def backoff_delay(
    retry: int, policy: RetryPolicy, rand: Callable[[], float] = random.random
) -> float:
    """The jittered wait before retry number ``retry`` (1 = after the first failure)."""
    ceiling = min(policy.max_delay, math.ldexp(policy.base_delay, min(retry - 1, 64)))
    return ceiling * (1.0 - policy.jitter * rand())


def retry_delay(
    error: BaseException,
    retry: int,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before sending again after ``error``, or None: do not retry."""
    if getattr(error, "retryable", False) is not True or retry >= policy.max_attempts:
        return None
    delay = backoff_delay(retry, policy, rand)
    asked = getattr(error, "retry_after", None)
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked >= 0:
        if asked > policy.max_retry_after:
            return None
        delay = max(delay, float(asked))
    return delay


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    cancel: threading.Event | None = None,
    on_retry: RetryCallback | None = None,
    sleep: Callable[[float], object] | None = None,
    rand: Callable[[], float] = random.random,
) -> T:
    """``call()``, again after a retryable failure while attempts are left; else raise.

    The wait is on ``cancel`` (not ``time.sleep``): setting it ends the wait at once and
    re-raises the last error. Errors not marked ``retryable`` (a bad key, an unknown model,
    a bad option, an answer that already streamed text) raise on the spot, as do
    ``KeyboardInterrupt`` and the like. ``sleep`` and ``rand`` replace the wait and the
    jitter's random draw (for tests).
    """
    attempt = 1
    while True:
        try:
            return call()
        except Exception as error:
            delay = retry_delay(error, attempt, policy, rand)
            if delay is None or (cancel is not None and cancel.is_set()):
                raise
            log.debug("attempt %d failed (%s); retrying in %.2f s", attempt, error, delay)
            if on_retry is not None:
                try:
                    on_retry(attempt, error, delay)
                except Exception:  # a broken progress bar must not stop the retries
                    log.exception("on_retry callback failed")
            if _wait(delay, cancel, sleep):
                raise
        attempt += 1


def _wait(
    delay: float, cancel: threading.Event | None, sleep: Callable[[float], object] | None
) -> bool:
    """Wait ``delay`` seconds; True when ``cancel`` was set meanwhile."""
    if sleep is not None:
        sleep(delay)
        return cancel is not None and cancel.is_set()
    return (cancel or threading.Event()).wait(delay)
