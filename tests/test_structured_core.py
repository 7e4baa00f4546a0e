"""The backend-neutral halves of structured output and thinking: the schema a user gives is
checked before anything is sent, an answer is validated into ``parsed``, and a trace written
between ``<think>`` tags is split from the answer however the stream cuts it."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from localmind_jupyter.backends._schema import output_schema
from localmind_jupyter.backends._stream import Thinking
from localmind_jupyter.backends._think_tags import ThinkSplitter
from localmind_jupyter.errors import GenerationError, OptionError

CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}


class Capital(BaseModel):
    capital: str
    population_millions: float


def test_a_json_schema_answer_parses_to_a_dict():
    schema = output_schema(CAPITAL)
    assert schema.parse('{"capital": "Paris", "population_millions": 2.1}') == {
        "capital": "Paris",
        "population_millions": 2.1,
    }
    assert schema.name == "answer"


def test_a_pydantic_class_answer_parses_to_an_instance():
    schema = output_schema(Capital)
    parsed = schema.parse('{"capital": "Paris", "population_millions": 2}')
    assert isinstance(parsed, Capital) and parsed.capital == "Paris"
    assert schema.name == "Capital"
    assert schema.json_schema["required"] == ["capital", "population_millions"]


def test_an_answer_that_does_not_validate_names_the_error_and_keeps_the_text():
    raw = '{"capital": "Paris"}'
    with pytest.raises(GenerationError, match="'population_millions' is a required") as info:
        output_schema(CAPITAL).parse(raw)
    assert info.value.partial_text == raw
    with pytest.raises(GenerationError, match="does not match Capital: population_millions"):
        output_schema(Capital).parse(raw)
    with pytest.raises(GenerationError, match="not valid JSON") as info:
        output_schema(CAPITAL).parse('{"capital": "Par')
    assert info.value.partial_text == '{"capital": "Par'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"type": "objekt"}, "not a valid JSON Schema at type"),
        ({"properties": {"a": {"type": 5}}}, "not a valid JSON Schema at properties/a/type"),
        (Capital(capital="x", population_millions=1), "a pydantic class, not an instance"),
        (42, "JSON Schema dict or a pydantic BaseModel subclass, got int"),
        (str, "got type"),
        ("{not json", "a string schema must be JSON"),
        ({"default": object()}, "not JSON-serialisable"),
    ],
)
def test_a_bad_schema_fails_before_anything_is_sent(value, message):
    with pytest.raises(OptionError, match=message):
        output_schema(value)


def test_schema_names_fit_every_engine():
    assert output_schema({"title": "my schema!", "type": "object"}).name == "my_schema"


def _split(pieces, opened=False):
    splitter = ThinkSplitter(opened)
    out = [d for piece in pieces for d in splitter.feed(piece)] + splitter.flush()
    text = "".join(d for d in out if isinstance(d, str))
    thinking = "".join(d.text for d in out if isinstance(d, Thinking))
    return thinking, text


@pytest.mark.parametrize(
    ("raw", "thinking", "text"),
    [
        ("<think>\nhmm, France.\n</think>\n\nParis.", "\nhmm, France.\n", "Paris."),
        ("Paris.", "", "Paris."),
        ("  <think>a</think>b", "a", "b"),
        ("Use <think> tags like this.", "", "Use <think> tags like this."),
        ("<think>never closed", "never closed", ""),
        ("<thi", "", "<thi"),
        ("<think></think>", "", ""),
        ("answer <think>x</think>", "", "answer <think>x</think>"),
    ],
)
def test_think_tags_are_split_from_the_answer(raw, thinking, text):
    assert _split([raw]) == (thinking, text)


def test_a_trace_opened_by_the_prompt():
    assert _split(["reasoning</think>\n\nParis"], opened=True) == ("reasoning", "Paris")


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=8))
def test_where_the_stream_cuts_changes_nothing(cuts):
    raw = "<think>\nstep one <b>, step </thi two\n</think>\n\nParis is the capital."
    points = sorted({min(c, len(raw)) for c in cuts} | {0, len(raw)})
    pieces = [raw[a:b] for a, b in itertools.pairwise(points)]
    assert _split(pieces) == ("\nstep one <b>, step </thi two\n", "Paris is the capital.")
