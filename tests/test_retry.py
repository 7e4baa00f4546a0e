"""Retries: which failures each backend marks worth another try, and the policy that retries.

The marking is checked with the official clients (httpx for Ollama, the ``openai`` and
``anthropic`` SDKs) against the loopback servers, which fail the way the real services do;
``call_with_retries`` against a real server counts the requests it sent and times the waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import pytest

from localmind_jupyter.backends._retry_hints import retry_after
from localmind_jupyter.backends.anthropic import AnthropicBackend
from localmind_jupyter.backends.base import BaseBackend
from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.backends.openai import OpenAIBackend
from localmind_jupyter.core.retry import (
    RetryPolicy,
    backoff_delay,
    call_with_retries,
    retry_delay,
)
from localmind_jupyter.errors import GenerationError, LocalMindError, OptionError
from tests.conftest import free_port
from tests.servers.anthropic_server import AnthropicTestServer
from tests.servers.ollama_server import OllamaTestServer
from tests.servers.openai_server import OpenAITestServer

KEY = "sk-retry-secret-123456"
KINDS = ["ollama", "openai", "anthropic"]


@dataclass
class Served:
    kind: str
    backend: BaseBackend
    server: Any
    model: str

    def generate(self, prompt: str = "one two three four") -> Any:
        return self.backend.generate(prompt, self.model)

    def error(self, prompt: str = "one two three four") -> LocalMindError:
        with pytest.raises(LocalMindError) as info:
            self.generate(prompt)
        return info.value

    def chat_requests(self) -> int:
        path = "/api/chat" if self.kind == "ollama" else "/v1/"
        return sum(1 for request in self.server.requests if request[1].startswith(path))


def _backend(kind: str, url: str, key: str = KEY) -> BaseBackend:
    if kind == "ollama":
        return OllamaBackend({"base_url": url})
    if kind == "openai":
        return OpenAIBackend({"base_url": url, "api_key": key})
    return AnthropicBackend({"base_url": url, "api_key": key})


@pytest.fixture(autouse=True)
def _no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=KINDS)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """Each HTTP backend with its loopback server and a model it serves."""
    kind = request.param
    if kind == "ollama":
        with OllamaTestServer() as srv:
            yield Served(kind, _backend(kind, srv.url), srv, "smollm:135m")
    elif kind == "openai":
        with OpenAITestServer(models=["gpt-test"], api_key=KEY) as srv:
            yield Served(kind, _backend(kind, srv.base_url), srv, "gpt-test")
    else:
        with AnthropicTestServer(models=["claude-test"], api_key=KEY) as srv:
            yield Served(kind, _backend(kind, srv.base_url), srv, "claude-test")


# --- which failures are marked retryable ---------------------------------------------------


def test_a_500_is_retryable(served: Served) -> None:
    served.server.fail_status = 500
    error = served.error()
    assert error.retryable is True
    assert "500" in str(error)


def test_a_503_is_retryable(served: Served) -> None:
    served.server.fail_status = 503 if served.kind != "anthropic" else 529
    assert served.error().retryable is True


def test_a_stream_dropped_before_any_text_is_retryable(served: Served) -> None:
    served.server.drop_after = 0  # Ollama's cut comes before the headers, the others' after
    error = served.error()
    assert not getattr(error, "partial_text", "")
    assert error.retryable is True


def test_a_stream_dropped_after_text_is_not_retryable(served: Served) -> None:
    """The answer began: sending it again would run the generation twice."""
    served.server.drop_after = 2
    error = served.error()
    assert isinstance(error, GenerationError) and error.partial_text
    assert error.retryable is False


def test_a_server_that_is_down_is_retryable(served: Served) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    down = _backend(served.kind, url if served.kind == "ollama" else url + "/v1")
    with pytest.raises(LocalMindError) as info:
        down.generate("hi", served.model)
    assert info.value.retryable is True


def test_a_read_timeout_before_any_text_is_retryable(served: Served) -> None:
    if served.kind == "ollama":
        served.server.stall_after, served.server.stall_seconds = 0, 3.0
    else:
        served.server.token_delay = 3.0
    if served.kind == "ollama":
        slow: BaseBackend = OllamaBackend({"base_url": served.server.url, "read_timeout": 0.3})
    else:
        settings = {"base_url": served.server.base_url, "api_key": KEY, "read_timeout": 0.3}
        slow = type(served.backend)(settings)
    with pytest.raises(LocalMindError) as info:
        slow.generate("hi", served.model)
    assert info.value.retryable is True


@pytest.mark.parametrize("status", [400, 401, 403])
def test_client_errors_are_not_retryable(served: Served, status: int) -> None:
    served.server.fail_status = status
    error = served.error()
    assert error.retryable is False


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_wrong_key_is_not_retryable(kind: str) -> None:
    server = OpenAITestServer(api_key=KEY) if kind == "openai" else AnthropicTestServer(api_key=KEY)
    with server as srv:
        wrong = _backend(kind, srv.base_url, key="sk-wrong-key-0000000")
        with pytest.raises(LocalMindError, match="401") as info:
            wrong.generate("hi", srv.models[0])
    assert info.value.retryable is False


def test_an_unknown_model_is_not_retryable(served: Served) -> None:
    with pytest.raises(LocalMindError) as info:
        served.backend.generate("hi", "no-such-model")
    assert info.value.retryable is False


def test_an_in_band_error_before_text_is_retryable(served: Served) -> None:
    """Anthropic's overloaded_error, OpenAI's server_error (Ollama: a 500 before the stream)."""
    served.server.error_after = 0
    error = served.error()
    assert error.retryable is True
    if served.kind == "anthropic":
        assert "overloaded_error" in str(error)


def test_an_in_band_error_after_text_is_not_retryable(served: Served) -> None:
    served.server.error_after = 2
    error = served.error()
    assert isinstance(error, GenerationError) and error.partial_text
    assert error.retryable is False


# --- Retry-After parsing -------------------------------------------------------------------


def test_retry_after_reads_seconds_dates_and_milliseconds() -> None:
    assert retry_after({"retry-after": "1"}) == 1.0
    assert retry_after({"retry-after": " 2.5 "}) == 2.5
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    in_ten = retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)})
    assert in_ten is not None and 8 <= in_ten <= 10
    assert retry_after({"retry-after": formatdate(time.time() - 60, usegmt=True)}) == 0.0
    for junk in ("", "soon", "-3", "nan", "inf"):
        assert retry_after({"retry-after": junk}) is None
    assert retry_after({}) is None and retry_after(None) is None


# --- the policy ----------------------------------------------------------------------------


class Flaky(LocalMindError):
    retryable = True


class Broken(LocalMindError):
    pass


class Calls:
    """A callable that raises the given errors in turn, then answers."""

    def __init__(self, *errors: BaseException, answer: str = "ok") -> None:
        self.errors = list(errors)
        self.count = 0
        self.answer = answer

    def __call__(self) -> str:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("max_attempts", 0, "at least 1"),
        ("max_attempts", 2.5, "whole number"),
        ("max_attempts", True, "whole number"),
        ("base_delay", -1, "0 or more"),
        ("max_delay", float("inf"), "finite"),
        ("jitter", 1.5, "fraction from 0 to 1"),
        ("jitter", "0.5", "must be a number"),
        ("max_retry_after", -0.1, "0 or more"),
    ],
)
def test_a_bad_policy_is_an_option_error(field: str, value: object, words: str) -> None:
    with pytest.raises(OptionError, match=words):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_max_delay_below_base_delay_is_refused() -> None:
    with pytest.raises(OptionError, match=r"max_delay \(1 s\) must not be below base_delay"):
        RetryPolicy(base_delay=2, max_delay=1)


def test_backoff_doubles_within_its_jitter_band_and_stops_at_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.5)
    top = [backoff_delay(n, policy, rand=lambda: 0.0) for n in range(1, 7)]
    assert top == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    low = [backoff_delay(n, policy, rand=lambda: 1.0) for n in range(1, 7)]
    assert low == [0.25, 0.5, 1.0, 1.5, 1.5, 1.5]
    full = RetryPolicy(base_delay=1, max_delay=8, jitter=1.0)
    assert backoff_delay(3, full, rand=lambda: 1.0) == 0.0
    assert backoff_delay(3, full, rand=lambda: 0.25) == 3.0
    assert backoff_delay(10_000, full, rand=lambda: 0.0) == 8.0  # no overflow
    assert backoff_delay(2, RetryPolicy(jitter=0.0)) == 1.0


def test_backoff_with_real_randomness_stays_in_the_band() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=30, jitter=0.5)
    draws = [backoff_delay(3, policy) for _ in range(500)]
    assert all(2.0 <= d <= 4.0 for d in draws)
    assert max(draws) - min(draws) > 1.0  # really spread, not one value


def test_retry_after_wins_when_longer_even_above_max_delay() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=2.0, jitter=0.0)
    error = Flaky("slow down")
    error.retry_after = 7.0
    assert retry_delay(error, 1, policy) == 7.0
    error.retry_after = 0.1
    assert retry_delay(error, 1, policy) == 0.5  # the backoff, when longer


def test_a_retry_after_beyond_max_retry_after_is_not_waited_for() -> None:
    error = Flaky("quota spent for today")
    error.retry_after = 3600.0
    calls = Calls(error)
    with pytest.raises(Flaky):
        call_with_retries(calls, RetryPolicy(), sleep=lambda s: pytest.fail("waited"))
    assert calls.count == 1


def test_retryable_errors_are_retried_up_to_max_attempts() -> None:
    waits: list[float] = []
    seen: list[tuple[int, str, float]] = []
    calls = Calls(*(Flaky(f"busy {n}") for n in range(10)))
    with pytest.raises(Flaky, match="busy 3"):
        call_with_retries(
            calls,
            RetryPolicy(max_attempts=4, base_delay=0.5, jitter=0.5),
            sleep=waits.append,
            rand=lambda: 0.0,
            on_retry=lambda n, e, d: seen.append((n, str(e), d)),
        )
    assert calls.count == 4
    assert waits == [0.5, 1.0, 2.0]
    assert seen == [(1, "busy 0", 0.5), (2, "busy 1", 1.0), (3, "busy 2", 2.0)]


def test_a_retry_that_succeeds_returns_its_answer() -> None:
    calls = Calls(Flaky("busy"), Flaky("busy"), answer="done")
    assert call_with_retries(calls, RetryPolicy(), sleep=lambda s: None) == "done"
    assert calls.count == 3


def test_errors_not_marked_retryable_raise_at_once() -> None:
    for error in (Broken("bad key"), ValueError("plain"), OptionError("bad option")):
        calls = Calls(error)
        with pytest.raises(type(error)):
            call_with_retries(calls, RetryPolicy(), sleep=lambda s: pytest.fail("waited"))
        assert calls.count == 1


def test_an_answer_that_streamed_text_is_not_retried() -> None:
    error = GenerationError("dropped mid-answer", "half an ans")
    error.retryable = False  # what the base sets once text arrived
    calls = Calls(error)
    with pytest.raises(GenerationError):
        call_with_retries(calls, RetryPolicy(), sleep=lambda s: pytest.fail("waited"))
    assert calls.count == 1


def test_one_attempt_means_no_retry() -> None:
    calls = Calls(Flaky("busy"))
    with pytest.raises(Flaky):
        call_with_retries(calls, RetryPolicy(max_attempts=1), sleep=lambda s: None)
    assert calls.count == 1


def test_keyboard_interrupt_is_never_retried() -> None:
    calls = Calls(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        call_with_retries(calls, RetryPolicy(), sleep=lambda s: None)
    assert calls.count == 1


def test_a_broken_on_retry_callback_does_not_stop_the_retries() -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("progress bar bug")

    calls = Calls(Flaky("busy"))
    assert call_with_retries(calls, RetryPolicy(), on_retry=broken, sleep=lambda s: None) == "ok"


def test_cancel_during_the_wait_returns_at_once_with_the_last_error() -> None:
    cancel = threading.Event()
    calls = Calls(*(Flaky("busy") for _ in range(5)))
    cancelled_at = _cancel_later(cancel, 0.2)
    with pytest.raises(Flaky):
        call_with_retries(calls, RetryPolicy(base_delay=20, max_delay=20), cancel=cancel)
    assert time.monotonic() - cancelled_at[0] < 0.2
    assert calls.count == 1


def _cancel_later(cancel: threading.Event, seconds: float) -> list[float]:
    """Set ``cancel`` after ``seconds``; the list gets the moment it was set."""
    when: list[float] = []

    def fire() -> None:
        when.append(time.monotonic())
        cancel.set()

    threading.Timer(seconds, fire).start()
    return when


def test_a_cancel_already_set_stops_before_the_first_wait() -> None:
    cancel = threading.Event()
    cancel.set()
    calls = Calls(Flaky("busy"))
    with pytest.raises(Flaky):
        call_with_retries(calls, RetryPolicy(), cancel=cancel, sleep=lambda s: pytest.fail("x"))
    assert calls.count == 1


# --- against the servers: Retry-After, and the policy counting real requests ---------------


def test_a_429_with_retry_after_is_retryable_and_says_how_long(served: Served) -> None:
    served.server.fail_next(429, 1, retry_after=1)
    error = served.error()
    assert "429" in str(error)
    assert error.retryable is True and error.retry_after == 1.0
    assert served.generate().text  # only the next request was refused


def test_a_retry_after_date_is_read_too(served: Served) -> None:
    served.server.fail_next(503, 1, retry_after=formatdate(time.time() + 30, usegmt=True))
    error = served.error()
    assert error.retryable is True
    assert error.retry_after is not None and 27 <= error.retry_after <= 30


def test_call_with_retries_waits_out_retry_after_then_answers(served: Served) -> None:
    served.server.fail_next(429, 1, retry_after=1)
    retries: list[tuple[int, float]] = []
    started = time.monotonic()
    response = call_with_retries(
        served.generate,
        RetryPolicy(base_delay=0.01, max_delay=0.05),
        on_retry=lambda n, e, d: retries.append((n, d)),
    )
    waited = time.monotonic() - started
    assert response.text.startswith("You said:")
    assert retries == [(1, 1.0)] and waited >= 1.0
    assert served.chat_requests() == 2


def test_call_with_retries_gives_up_after_exactly_max_attempts(served: Served) -> None:
    served.server.fail_next(500, 10)
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    with pytest.raises(LocalMindError, match="500"):
        call_with_retries(served.generate, policy)
    assert served.chat_requests() == 3


def test_a_non_retryable_failure_is_sent_once(served: Served) -> None:
    served.server.fail_next(400, 10)
    with pytest.raises(LocalMindError):
        call_with_retries(served.generate, RetryPolicy(base_delay=0.01))
    assert served.chat_requests() == 1


def test_cancel_while_waiting_out_a_retry_after_returns_at_once(served: Served) -> None:
    served.server.fail_next(429, 5, retry_after=30)
    cancel = threading.Event()
    timers: list[list[float]] = []

    def waiting(attempt: int, error: BaseException, delay: float) -> None:
        assert delay == 30.0
        timers.append(_cancel_later(cancel, 0.2))  # cancel 0.2 s into the wait

    with pytest.raises(LocalMindError, match="429"):
        call_with_retries(served.generate, RetryPolicy(), cancel=cancel, on_retry=waiting)
    (cancelled_at,) = timers[0]
    assert time.monotonic() - cancelled_at < 0.2  # not the 30 s the server asked
    assert served.chat_requests() == 1


def test_a_drop_after_text_is_sent_once_by_the_policy(served: Served) -> None:
    served.server.drop_after = 2
    with pytest.raises(GenerationError) as info:
        call_with_retries(served.generate, RetryPolicy(base_delay=0.01))
    assert info.value.partial_text and served.chat_requests() == 1


# --- the servers' per-prompt faults, for batch tests ---------------------------------------

ROWS = ["row one", "row two", "row three", "row four"]


@pytest.mark.parametrize("kind", ["status 500", "in-band error", "drop mid-stream"])
def test_a_per_prompt_fault_fails_only_its_row(served: Served, kind: str) -> None:
    served.server.fault_for_prompt("row three", kind)
    answers = served.backend.generate_batch(ROWS, served.model)
    assert [a.finish_reason for a in answers][:2] == ["stop", "stop"]
    assert answers[3].text == "You said: row four"
    failed = answers[2]
    assert failed.finish_reason == "error" and failed.error
    assert [served.server.requests_for(row) for row in ROWS] == [1, 1, 1, 1]


def test_a_fault_for_a_few_times_then_the_row_succeeds(served: Served) -> None:
    served.server.fault_for_prompt("row two", "status 503", times=2, retry_after=0)
    policy = RetryPolicy(base_delay=0.01, max_delay=0.02)
    answers = [call_with_retries(lambda r=row: served.generate(r), policy) for row in ROWS]
    assert [a.text for a in answers] == [f"You said: {row}" for row in ROWS]
    counts = served.server.prompt_counts
    assert [counts[row] for row in ROWS] == [1, 3, 1, 1]


def test_exact_prompt_faults_and_counts_tell_similar_rows_apart(served: Served) -> None:
    served.server.fault_for_prompt("row 1", "status 500", exact=True)
    answers = served.backend.generate_batch(["row 1", "row 10", "row 11"], served.model)
    assert [a.finish_reason for a in answers] == ["error", "stop", "stop"]
    assert served.server.requests_for("row 1", exact=True) == 1
    assert served.server.requests_for("row 1") == 3


def test_reset_faults_clears_the_queued_and_per_prompt_faults(served: Served) -> None:
    served.server.fail_next(500, 3)
    served.server.fault_for_prompt("row", "status 500")
    served.server.reset_faults()
    assert served.generate("row one").text == "You said: row one"


def test_a_bad_fault_kind_is_refused() -> None:
    with OllamaTestServer() as srv:
        with pytest.raises(ValueError, match="unknown fault kind"):
            srv.fault_for_prompt("x", "explode")
        with pytest.raises(ValueError, match="400-599"):
            srv.fail_next(200)
