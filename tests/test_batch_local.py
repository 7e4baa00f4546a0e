"""In-process engines in a batch: an engine that decodes several sequences per step
(``batch_size > 1``) gets the rows in chunks through ``generate_batch``; one that does not
runs them one at a time, and a cancel stops the row in flight within a step."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

import localmind_jupyter as lm
from localmind_jupyter.backends._response import ModelResponse, failed_response
from localmind_jupyter.session import reset_session
from tests.scripted_backend import ScriptedBackend, install


class Batching(ScriptedBackend):
    """Answers a chunk at once, like a padded batched ``generate``."""

    type_name = "batching"
    batch_size = 3

    def setup(self) -> None:
        super().setup()
        self.calls: list[tuple[list[str], dict[str, Any]]] = []
        self.stop_after_calls: int | None = None

    def generate_batch(
        self,
        prompts: Sequence[str],
        model: str,
        *,
        cancel: threading.Event | None = None,
        **kwargs: Any,
    ) -> list[ModelResponse]:
        self.calls.append((list(prompts), kwargs))
        if self.stop_after_calls == len(self.calls) and cancel is not None:
            cancel.set()  # as if Cancel was clicked while this chunk ran
            return [failed_response(self.name, model, "cancelled", None) for _ in prompts]
        return [
            ModelResponse(text=p.upper(), model=model, backend=self.name, finish_reason="stop")
            for p in prompts
        ]


@pytest.fixture
def batching(isolated_home) -> Batching:
    reset_session()
    backend = install(Batching(name="batching"))
    assert isinstance(backend, Batching)
    yield backend
    reset_session()


def test_an_engine_that_batches_gets_the_rows_in_chunks(batching):
    prompts = [f"p{i}" for i in range(7)]
    result = lm.batch(prompts, "batching:m", temperature=0, progress=False, concurrency=5)
    assert [call for call, _ in batching.calls] == [["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6"]]
    assert all(options == {"temperature": 0} for _, options in batching.calls)
    assert result.texts == [p.upper() for p in prompts] and result.ok


def test_a_cancel_during_a_chunk_keeps_the_chunks_before_it(batching):
    batching.stop_after_calls = 2
    result = lm.batch([f"p{i}" for i in range(9)], "batching:m", progress=False)
    assert len(batching.calls) == 2, "a chunk was sent after the cancel"
    assert result.cancelled and result.texts[:3] == ["P0", "P1", "P2"]
    assert [r.finish_reason for r in result][3:] == ["cancelled"] * 6


def test_bad_options_are_refused_before_the_first_chunk(batching):
    with pytest.raises(lm.OptionError, match="max_tokens must be a positive integer"):
        lm.batch(["a", "b"], "batching:m", max_tokens=0, progress=False)
    assert batching.calls == []


def test_an_engine_that_does_not_batch_streams_one_row_at_a_time(isolated_home):
    reset_session()
    backend = install(ScriptedBackend(name="scripted"))
    backend.script = ["an ", "answer"]
    result = lm.batch(["a", "b", "c"], "scripted:m", progress=False)  # its default: 1
    assert [r.prompt for r in backend.sent] == ["a", "b", "c"]
    assert result.texts == ["an answer"] * 3
    reset_session()
