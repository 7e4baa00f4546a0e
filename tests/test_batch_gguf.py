"""A schema batch with the real bundled model (llama.cpp, greedy): every row's answer is the
schema's object, and ``to_pandas()`` turns its fields into typed columns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

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
