"""The backend-neutral halves of structured output and thinking: the schema a user gives is
checked before anything is sent, an answer is validated into ``parsed``, and a trace written
between ``<think>`` tags is split from the answer however the stream cuts it."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from localmind_jupyter.backends import BaseBackend, Capabilities, GenerationRequest, Started, Usage
from localmind_jupyter.backends._response import Thinking
from localmind_jupyter.backends._schema import output_schema
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


# --- through the base, with a backend that yields what it is told ---------------------------
class Scripted(BaseBackend):
    """Yields a scripted answer; records each request it was asked to send."""

    type_name = "scripted"
    display_name = "Scripted"
    capabilities = Capabilities(downloads=False, json_schema=True, thinking=True)
    think_tags = True
    extra_options = frozenset({"repeat_penalty"})

    def setup(self) -> None:
        self.script: list[str | Usage] = []
        self.sent: list[GenerationRequest] = []

    def list_models(self) -> list[str]:
        return ["m"]

    def deltas(self, request: GenerationRequest):
        self.sent.append(request)
        yield Started()
        yield from self.script


class Plain(Scripted):
    type_name = "plain"
    display_name = "Plain"
    capabilities = Capabilities(downloads=False)


@pytest.fixture
def scripted():
    return Scripted()


def test_generate_with_a_schema_fills_parsed(scripted):
    scripted.script = ['{"capital": ', '"Paris", "population_millions": 2.1}']
    response = scripted.generate("France?", "m", schema=Capital)
    assert response.parsed == Capital(capital="Paris", population_millions=2.1)
    assert scripted.sent[0].output_schema.json_schema["title"] == "Capital"
    assert response.to_dict()["parsed"] == {"capital": "Paris", "population_millions": 2.1}
    json.dumps(response.to_dict())
    assert scripted.generate("France?", "m").parsed is None


def test_an_invalid_answer_raises_from_the_stream_with_the_text_kept(scripted):
    scripted.script = ['{"capital": "Paris"}']
    stream = scripted.generate_stream("France?", "m", schema=CAPITAL)
    with pytest.raises(GenerationError, match="population_millions") as info:
        list(stream)
    assert info.value.partial_text == '{"capital": "Paris"}'
    assert stream.response is not None and stream.response.text == '{"capital": "Paris"}'


def test_an_answer_cut_at_max_tokens_says_so(scripted):
    scripted.script = ['{"capital": "Pa', Usage(5, 8, "length")]
    with pytest.raises(GenerationError, match=r"cut at max_tokens.*raise max_tokens"):
        scripted.generate("France?", "m", schema=CAPITAL)


def test_a_cancelled_schema_answer_is_not_validated(scripted):
    scripted.script = ['{"capital": ', '"Paris"']
    with scripted.generate_stream("France?", "m", schema=CAPITAL) as stream:
        next(stream)
    assert stream.response.finish_reason == "cancelled" and stream.response.parsed is None


def test_a_backend_that_cannot_enforce_a_schema_refuses_before_sending():
    plain = Plain()
    for options in ({"schema": CAPITAL}, {"json_mode": True}):
        with pytest.raises(OptionError, match="cannot constrain its output to JSON"):
            plain.generate_stream("France?", "m", **options)
    with pytest.raises(OptionError, match="has no separate thinking"):
        plain.generate_stream("France?", "m", think="high")
    plain.generate("France?", "m", think=False)  # off is always honoured
    assert len(plain.sent) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"think": "extreme"}, "think must be True, False, 'low', 'medium' or 'high'"),
        ({"json_mode": "yes"}, "json_mode must be True or False"),
        ({"schema": 3}, "JSON Schema dict or a pydantic BaseModel subclass, got int"),
        ({"options": {"num_ctx": 4}}, r"unknown backend option\(s\) num_ctx; .*repeat_penalty"),
        ({"options": ["repeat_penalty"]}, "options must be a dict"),
        ({"options": {"repeat_penalty": 1.1}, "repeat_penalty": 1.2}, "given twice"),
    ],
)
def test_bad_options_fail_before_sending(scripted, options, message):
    with pytest.raises(OptionError, match=message):
        scripted.generate_stream("hi", "m", **options)
    assert scripted.sent == []


def test_pass_through_options_reach_the_backend(scripted):
    scripted.generate("hi", "m", options={"repeat_penalty": 1.3}, think="low")
    assert scripted.sent[0].extra == {"repeat_penalty": 1.3}
    assert scripted.sent[0].think == "low"


def test_a_think_trace_is_kept_out_of_the_answer(scripted):
    scripted.script = ["<think>", "France... capital", "</think>\n\n", "Paris."]
    stream = scripted.generate_stream("France?", "m", think=True)
    assert "".join(stream) == "Paris."
    assert stream.response.text == "Paris."
    assert stream.response.thinking == "France... capital"


def test_thinking_that_uses_the_whole_budget_warns(scripted):
    scripted.script = ["<think>", "hmm " * 5, Usage(3, 6, "length")]
    response = scripted.generate("France?", "m", think=True)
    assert response.text == "" and response.thinking
    assert "spent the whole token budget (6 tokens) thinking" in response.warning
    assert "--max-tokens" in response.warning
    scripted.script = ["Paris.", Usage(3, 2, "stop")]
    assert scripted.generate("France?", "m").warning is None
