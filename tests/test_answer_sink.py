"""The base tells its ``answer_sink`` once how every generation ended, and ``generate_batch``
keeps one answer per prompt: the two hooks the answer log and the batch runner stand on."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from localmind_jupyter.backends import Usage
from localmind_jupyter.errors import BackendUnavailable, GenerationError, OptionError

from .scripted_backend import ScriptedBackend

Ended = tuple[str, Any, Any]


def _backend(*script: Any) -> tuple[ScriptedBackend, list[Ended]]:
    backend = ScriptedBackend()
    backend.script = list(script)
    told: list[Ended] = []

    def sink(who: Any, request: Any, response: Any, error: Any) -> None:
        assert who is backend
        told.append((request.prompt, response, error))

    backend.answer_sink = sink
    return backend, told


def test_a_finished_answer_is_told_once_with_its_request() -> None:
    backend, told = _backend("Par", "is", Usage(3, 2, "stop"))
    response = backend.generate("capital?", "m", temperature=0)
    assert [(p, r, e) for p, r, e in told] == [("capital?", response, None)]
    assert response.text == "Paris" and response.error is None


def test_a_cancelled_answer_is_told_with_its_partial_text() -> None:
    backend, told = _backend("one ", "two ", "three")
    stream = backend.generate_stream("count", "m")
    assert next(iter(stream)) == "one "
    stream.close()
    assert len(told) == 1
    _, response, error = told[0]
    assert error is None and response.finish_reason == "cancelled" and response.text == "one "


def test_a_failure_mid_answer_is_told_and_is_no_longer_retryable() -> None:
    dropped = BackendUnavailable("connection dropped")
    dropped.retryable = True
    backend, told = _backend("half an ", dropped)
    with pytest.raises(BackendUnavailable) as caught:
        backend.generate("go", "m")
    assert told == [("go", None, caught.value)]
    assert caught.value.retryable is False  # text arrived: sending again is a new answer


def test_a_set_up_failure_is_told_too() -> None:
    backend, told = _backend()

    def refusing(request: Any) -> Any:
        raise BackendUnavailable("server down")
        yield  # pragma: no cover

    backend.deltas = refusing  # type: ignore[method-assign]
    with pytest.raises(BackendUnavailable):
        backend.generate_stream("go", "m")
    assert len(told) == 1 and told[0][1] is None and isinstance(told[0][2], BackendUnavailable)


def test_an_answer_that_breaks_its_schema_is_told_as_failed() -> None:
    backend, told = _backend('{"capital": 3}')
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string"}},
        "required": ["capital"],
    }
    with pytest.raises(GenerationError):
        backend.generate("go", "m", schema=schema)
    ((_, response, error),) = told
    assert response.text == '{"capital": 3}' and isinstance(error, GenerationError)


def test_a_sink_that_raises_does_not_cost_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    backend = ScriptedBackend()
    backend.script = ["fine"]

    def broken(*args: Any) -> None:
        raise RuntimeError("disk full")

    backend.answer_sink = broken
    assert backend.generate("go", "m").text == "fine"
    assert "recording the answer failed" in caplog.text


def test_generate_batch_keeps_order_and_a_failed_row_as_an_error_response() -> None:
    backend = ScriptedBackend()
    scripts = iter([["a"], [GenerationError("boom", "")], ["c"]])
    original = backend.deltas

    def per_prompt(request: Any) -> Any:
        backend.script = next(scripts)
        return original(request)

    backend.deltas = per_prompt  # type: ignore[method-assign]
    answers = backend.generate_batch(["1", "2", "3"], "m")
    assert [a.text for a in answers] == ["a", "", "c"]
    assert [a.finish_reason for a in answers] == ["stop", "error", "stop"]
    assert answers[1].error == "boom" and answers[0].error is None


def test_generate_batch_refuses_bad_options_before_any_prompt() -> None:
    backend = ScriptedBackend()
    with pytest.raises(OptionError, match="temperature"):
        backend.generate_batch(["1", "2"], "m", temperature=9)
    assert backend.sent == []


def test_generate_batch_after_cancel_answers_the_rest_cancelled() -> None:
    backend = ScriptedBackend()
    backend.script = ["x"]
    cancel = threading.Event()
    cancel.set()
    answers = backend.generate_batch(["1", "2"], "m", cancel=cancel)
    assert [a.finish_reason for a in answers] == ["cancelled", "cancelled"]
    assert backend.sent == []
