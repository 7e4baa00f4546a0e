"""A schema batch with the real bundled model (llama.cpp, greedy): every row's answer is the
schema's object, and ``to_pandas()`` turns its fields into typed columns."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

import localmind_jupyter as lm
from localmind_jupyter.backends import _embedded
from localmind_jupyter.session import reset_session

pd = pytest.importorskip("pandas")
MODEL = f"gguf:{_embedded.EMBEDDED_MODEL_NAME}"


class Review(BaseModel):
    sentiment: Literal["positive", "negative"]
    stars: int
    product: str


@pytest.fixture
def gguf(isolated_home: Path) -> Iterator[None]:
    (isolated_home / "config.yaml").write_text("backends:\n  gguf: {type: gguf}\n")
    reset_session()
    yield
    reset_session()


def test_a_schema_batch_gives_objects_and_typed_columns(gguf: None) -> None:
    frame = pd.DataFrame(
        {
            "text": [
                "I love this phone, the battery lasts for days.",
                "The kettle broke after one week. Terrible.",
                "These headphones sound wonderful.",
            ]
        },
        index=pd.Index([101, 102, 103], name="review_id"),
    )
    result = lm.batch(
        frame,
        MODEL,
        template="Review: {text}\nGive the sentiment, 1-5 stars and the product as JSON.",
        schema=Review,
        temperature=0,
        max_tokens=60,
        progress=False,
    )
    assert result.ok, result.errors
    assert all(isinstance(p, Review) for p in result.parsed)
    out = result.to_pandas()
    assert list(out.index) == [101, 102, 103] and out.index.name == "review_id"
    assert list(out.columns[:3]) == ["sentiment", "stars", "product"]
    assert str(out["stars"].dtype) == "Int64"
    assert str(out["product"].dtype) == "string"
    assert list(out["sentiment"].cat.categories) == ["positive", "negative"]
    assert list(out["stars"]) == [p.stars for p in result.parsed]
    assert list(out["sentiment"]) == [p.sentiment for p in result.parsed]
    assert (out["completion_tokens"] > 0).all() and (out["finish_reason"] == "stop").all()


def test_a_cancel_stops_the_row_in_flight_within_a_step(gguf: None) -> None:
    """llama.cpp runs one row at a time; the cancel reaches the one computing."""
    cancel_now = threading.Event()
    from localmind_jupyter.core.batch import prepare_inputs, run_batch
    from localmind_jupyter.session import get_session

    backend, model = get_session().resolve(MODEL, None)
    seen: list[int] = []

    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.perf_counter())
        cancel_now.set()

    def on_progress(progress: Any) -> None:
        seen.append(progress.done)
        if progress.done >= 1 and len(seen) == 2:
            threading.Timer(1.0, cancel).start()  # mid-way through the second row

    result = run_batch(
        backend,
        model,
        prepare_inputs(["Say hi.", "Count from 1 to 300.", "Count from 1 to 300.", "Hello"]),
        {"temperature": 0, "max_tokens": 400},
        concurrency=1,
        on_progress=on_progress,
        cancel=cancel_now,
    )
    returned = time.perf_counter()
    assert result.cancelled and cancelled_at
    assert returned - cancelled_at[0] < 3, "the row in flight was not stopped"
    assert result[0].finish_reason in {"stop", "length"} and result[0].text
    second = result[1]
    assert second.finish_reason == "cancelled" and second.error is None
    assert (second.completion_tokens or 0) < 400, "the row in flight ran to its end"
    assert [r.finish_reason for r in result[2:]] == ["cancelled", "cancelled"]
    assert result[2].text == result[3].text == ""
