"""Faults for batch and retry tests, shared by the Ollama, OpenAI and Anthropic test servers.

Two kinds, both for generation requests only (chat, messages, generate):

- ``fail_next(status, count, retry_after=None)``: the next ``count`` requests get an HTTP
  error (429 with ``Retry-After``, 500, 503...) in the API's own error body;
- ``fault_for_prompt(text, kind)``: requests whose last user message contains ``text``
  (or equals it, ``exact=True``) fail: ``"status 500"`` (any status), ``"in-band error"``
  (the API's error inside a stream that began with HTTP 200) or ``"drop mid-stream"`` (the
  connection cut), after ``after`` pieces of text; ``times`` limits how many requests.

So a batch test can make row 3 fail and the rest succeed. The servers count the
generation requests of each prompt (``requests_for(text)``, ``prompt_counts``), so a test
can check that a rerun re-sends only the failed rows.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Fault", "PromptFaults", "last_user_text"]

FaultKind = Literal["status", "in-band", "drop"]


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one request; each server words it in its own API."""

    kind: FaultKind
    status: int = 500
    #: The ``Retry-After`` header's value, as sent (seconds or an HTTP date).
    retry_after: str | None = None
    #: Pieces of the answer streamed before an in-band error or a drop.
    after: int = 0


@dataclass
class _Rule:
    text: str
    exact: bool
    fault: Fault
    left: int | None  # requests still to fault; None: every one

    def matches(self, prompt: str) -> bool:
        return prompt == self.text if self.exact else self.text in prompt


def _header(retry_after: float | str | None) -> str | None:
    if retry_after is None or isinstance(retry_after, str):
        return retry_after
    return f"{retry_after:g}"


def _parse_kind(kind: str, status: int | None) -> tuple[FaultKind, int]:
    words = kind.lower().split()
    if words and words[0] == "status":
        code = int(words[1]) if len(words) > 1 else (status or 500)
        if not 400 <= code <= 599:
            raise ValueError(f"a fault status is 400-599, not {code}")
        return "status", code
    if words[:1] == ["in-band"]:
        return "in-band", status or 500
    if words[:1] == ["drop"]:
        return "drop", status or 500
    raise ValueError(f"unknown fault kind {kind!r}: 'status NNN', 'in-band error' or 'drop'")


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last user message (a string or a list of text parts)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    part["text"]
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
            return ""
    return ""


class PromptFaults:
    """Mixin of the test servers: queued and per-prompt faults, and per-prompt counts."""

    def _init_prompt_faults(self) -> None:
        self._fault_lock = threading.Lock()
        self._next_faults: deque[Fault] = deque()
        self._prompt_rules: list[_Rule] = []
        self._prompt_counts: Counter[str] = Counter()

    def fail_next(
        self, status: int, count: int = 1, retry_after: float | str | None = None
    ) -> None:
        """The next ``count`` generation requests get HTTP ``status`` (with ``Retry-After``)."""
        kind, code = _parse_kind(f"status {status}", None)
        with self._fault_lock:
            self._next_faults.extend([Fault(kind, code, _header(retry_after))] * count)

    def fault_for_prompt(
        self,
        text: str,
        kind: str = "status 500",
        *,
        exact: bool = False,
        times: int | None = None,
        after: int = 1,
        retry_after: float | str | None = None,
    ) -> None:
        """Fault the requests whose last user message contains ``text`` (see the module)."""
        fault_kind, code = _parse_kind(kind, None)
        fault = Fault(fault_kind, code, _header(retry_after), after)
        with self._fault_lock:
            self._prompt_rules.append(_Rule(text, exact, fault, times))

    def requests_for(self, text: str, *, exact: bool = False) -> int:
        """Generation requests so far whose last user message contains (or is) ``text``."""
        with self._fault_lock:
            counts = list(self._prompt_counts.items())
        return sum(n for prompt, n in counts if (prompt == text if exact else text in prompt))

    @property
    def prompt_counts(self) -> Counter[str]:
        """Generation requests so far, by last user message."""
        with self._fault_lock:
            return Counter(self._prompt_counts)

    def clear_prompt_faults(self) -> None:
        """Drop queued and per-prompt faults (the counts stay)."""
        with self._fault_lock:
            self._next_faults.clear()
            self._prompt_rules.clear()

    def _take_fault(self, messages: Sequence[Any]) -> Fault | None:
        """Count this generation request and return the fault it gets, if any."""
        prompt = last_user_text(messages)
        with self._fault_lock:
            self._prompt_counts[prompt] += 1
            if self._next_faults:
                return self._next_faults.popleft()
            for rule in self._prompt_rules:
                if rule.matches(prompt) and (rule.left is None or rule.left > 0):
                    if rule.left is not None:
                        rule.left -= 1
                    return rule.fault
        return None
