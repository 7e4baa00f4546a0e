"""A batch against faulty servers: per-row errors stay in their rows, retryable failures
are sent again (``Retry-After`` honoured), and a rerun sends only the rows that failed."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import localmind_jupyter as lm
from localmind_jupyter.core.retry import RetryPolicy
from localmind_jupyter.errors import OptionError
from localmind_jupyter.session import reset_session
from tests.servers.ollama_server import OllamaTestServer

#: Quick retries, so a row that keeps failing costs milliseconds.
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def server(isolated_home: Path) -> Iterator[OllamaTestServer]:
    with OllamaTestServer() as srv:
        (isolated_home / "config.yaml").write_text(
            textwrap.dedent(
                f"""
                default_model: ollama:smollm:135m
                backends:
                  ollama:
                    settings: {{base_url: "{srv.url}"}}
                """
            )
        )
        reset_session()
        yield srv
    reset_session()


def test_an_in_band_error_a_500_and_a_dropped_stream_are_error_rows(server):
    prompts = [f"row {i} has some words" for i in range(6)]
    server.fault_for_prompt("row 1 ", "in-band error", after=2)
    server.fault_for_prompt("row 3 ", "status 500")
    server.fault_for_prompt("row 4 ", "drop mid-stream", after=1)
    result = lm.batch(prompts, concurrency=3, progress=False, retry=FAST)
    reasons = [r.finish_reason for r in result]
    assert reasons == ["stop", "error", "stop", "error", "error", "stop"]
    assert result.texts[0] == "You said: row 0 has some words"
    assert sorted(result.errors) == [1, 3, 4]
    assert "mid-answer" in result.errors[1] and result.texts[1] == "You said: "
    assert "500" in result.errors[3] and result.texts[3] == ""
    assert "dropped" in result.errors[4] and result.texts[4] == "You "
    # Text had arrived for rows 1 and 4: never sent twice. The 500 was tried 3 times.
    assert server.requests_for("row 1 ") == 1 and server.requests_for("row 4 ") == 1
    assert server.requests_for("row 3 ") == FAST.max_attempts
    assert result.retries == FAST.max_attempts - 1
    out = result.to_pandas()
    assert list(out["finish_reason"]) == reasons and out["error"].notna().sum() == 3


def test_a_429_with_retry_after_is_waited_for_and_sent_again(server):
    server.fail_next(429, 1, retry_after=1)
    seen = []
    start = time.perf_counter()
    result = lm.batch(["first", "second"], concurrency=1, progress=seen.append)
    took = time.perf_counter() - start
    assert result.ok and result.texts == ["You said: first", "You said: second"]
    assert server.requests_for("first") == 2 and server.requests_for("second") == 1
    assert took >= 1.0, "Retry-After: 1 was not honoured"
    assert result.retries == 1 and seen[-1].retries == 1 and "1 retry" in seen[-1].line()


def test_a_drop_before_any_text_is_retried(server):
    server.fault_for_prompt("flaky", "drop mid-stream", after=0, times=1)
    result = lm.batch(["flaky one", "steady"], progress=False, retry=FAST)
    assert result.ok and result.texts[0] == "You said: flaky one"
    assert server.requests_for("flaky") == 2 and result.retries == 1


def test_a_rerun_after_failures_sends_only_the_failed_rows(server):
    prompts = [f"row {i}" for i in range(8)]
    server.fault_for_prompt("row 2", "status 503", exact=True)
    server.fault_for_prompt("row 5", "in-band error", exact=True)
    first = lm.batch(prompts, progress=False, retry=FAST)
    assert sorted(first.errors) == [2, 5]
    server.clear_prompt_faults()
    before = server.prompt_counts
    again = lm.batch(prompts, progress=False, retry=FAST)
    sent = server.prompt_counts - before
    assert dict(sent) == {"row 2": 1, "row 5": 1}, "only the failed rows are sent again"
    assert again.ok and again.cached == 6
    assert again.texts == [f"You said: row {i}" for i in range(8)]


def test_a_bad_retry_setting_is_refused_before_any_request(server):
    with pytest.raises(OptionError, match="max_attempts"):
        lm.batch(["a"], retry=0, progress=False)
    assert server.prompt_counts == {}


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("localmind-batch")]


def test_cancel_stops_rows_whose_server_went_silent(server):
    """A stalled answer sends no piece to notice the cancel on: the connection is shut."""
    server.stall_after = 1  # one piece, then nothing for 30 s
    server.stall_seconds = 30
    cancel = threading.Event()
    threading.Timer(0.8, cancel.set).start()
    from localmind_jupyter.core.batch import prepare_inputs, run_batch
    from localmind_jupyter.session import get_session

    backend, model = get_session().resolve(None, None)
    start = time.perf_counter()
    result = run_batch(
        backend, model, prepare_inputs(["a b c", "d e f", "g h"]), {}, concurrency=2, cancel=cancel
    )
    assert time.perf_counter() - start < 2.5, "the batch waited for the silent server"
    assert result.cancelled and result.counts == {"ok": 0, "error": 0, "cancelled": 3}
    assert result.texts[:2] == ["You ", "You "], "the partial answers are kept"
    assert server.requests_for("g h") == 0
    deadline = time.monotonic() + 2
    while _batch_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _batch_threads(), "a worker is still blocked reading the silent connection"


def test_stream_cancel_from_another_thread_ends_a_silent_ollama_answer(server):
    from localmind_jupyter.session import get_session

    server.stall_after = 2
    server.stall_seconds = 30
    backend, model = get_session().resolve(None, None)
    stream = backend.generate_stream("one two three", model)
    pieces = iter(stream)
    assert next(pieces) + next(pieces) == "You said: "
    threading.Timer(0.3, stream.cancel).start()
    start = time.perf_counter()
    assert list(pieces) == []
    assert time.perf_counter() - start < 1.5
    response = stream.response
    assert response is not None and response.finish_reason == "cancelled"
    assert response.text == "You said: " and response.error is None
