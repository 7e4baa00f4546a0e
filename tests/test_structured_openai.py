"""Structured output and thinking on the OpenAI-compatible backends, on the wire.

The real ``openai`` client talks to the loopback server, which checks ``response_format``
(strict mode's rules included), ``reasoning_effort`` and the pass-through knobs as the
real API does, and streams reasoning the way vLLM (``reasoning_content``) and llama.cpp's
server (``reasoning``) do.
"""

from __future__ import annotations

import copy
import json

import pytest
from pydantic import BaseModel

from localmind_jupyter.backends.openai import OpenAIBackend, VLLMBackend
from localmind_jupyter.errors import BackendUnavailable, GenerationError, OptionError
from tests.conftest import free_port

KEY = "sk-test-secret-123456"

CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital"],
}
PARIS = '{"capital": "Paris", "population_millions": 2.1}'


class Country(BaseModel):
    name: str
    code: str | None = None


class City(BaseModel):
    name: str
    country: Country


def openai_backend(server) -> OpenAIBackend:
    return OpenAIBackend({"base_url": server.base_url, "api_key": KEY})


def vllm_backend(server) -> VLLMBackend:
    return VLLMBackend({"base_url": server.base_url, "api_key": KEY})


def sent(server) -> dict:
    """The body of the last chat completion request."""
    return [r[3] for r in server.requests if r[1].endswith("/chat/completions")][-1]


def chat_requests(server) -> int:
    return sum(r[1].endswith("/chat/completions") for r in server.requests)


# --- what is sent ------------------------------------------------------------------------------


def test_a_schema_goes_as_a_strict_json_schema_and_comes_back_parsed(openai_server):
    openai_server.json_reply = PARIS
    user_schema = copy.deepcopy(CAPITAL)
    response = openai_backend(openai_server).generate("France?", "gpt-test", schema=user_schema)
    assert response.parsed == {"capital": "Paris", "population_millions": 2.1}
    assert response.text == PARIS
    fmt = sent(openai_server)["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "answer" and fmt["json_schema"]["strict"] is True
    # The wire copy is closed and requires every property (strict mode's rules) …
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert fmt["json_schema"]["schema"]["required"] == ["capital", "population_millions"]
    # … while the user's own schema is left as it was.
    assert user_schema == CAPITAL


def test_a_pydantic_class_with_nested_and_optional_fields_is_made_strict(openai_server):
    openai_server.json_reply = '{"name": "Lyon", "country": {"name": "France", "code": null}}'
    response = openai_backend(openai_server).generate("Lyon?", "gpt-test", schema=City)
    assert isinstance(response.parsed, City) and response.parsed.country.name == "France"
    spec = sent(openai_server)["response_format"]["json_schema"]
    assert spec["name"] == "City" and spec["strict"] is True
    country = spec["schema"]["$defs"]["Country"]
    assert country["additionalProperties"] is False and country["required"] == ["name", "code"]


def test_an_open_object_is_sent_unchanged_without_strict(openai_server):
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    openai_server.json_reply = '{"a": 1, "b": 2}'
    response = openai_backend(openai_server).generate("count", "gpt-test", schema=counts)
    assert response.parsed == {"a": 1, "b": 2}
    spec = sent(openai_server)["response_format"]["json_schema"]
    assert spec["strict"] is False and spec["schema"] == counts


def test_vllm_gets_the_users_schema_as_it_is(openai_server):
    openai_server.strict_checked = False  # vLLM's guided decoding enforces any schema
    openai_server.json_reply = '{"capital": "Paris"}'
    response = vllm_backend(openai_server).generate("France?", "gpt-test", schema=CAPITAL)
    assert response.parsed == {"capital": "Paris"}
    spec = sent(openai_server)["response_format"]["json_schema"]
    assert spec["schema"] == CAPITAL and spec["strict"] is True


def test_json_mode_asks_for_a_json_object(openai_server):
    openai_server.json_reply = '{"ok": true}'
    response = openai_backend(openai_server).generate("answer in JSON", "gpt-test", json_mode=True)
    assert sent(openai_server)["response_format"] == {"type": "json_object"}
    assert json.loads(response.text) == {"ok": True} and response.parsed is None


def test_json_mode_without_the_word_json_gets_the_apis_reason(openai_server):
    with pytest.raises(OptionError, match="must contain the word 'json'"):
        openai_backend(openai_server).generate("answer", "gpt-test", json_mode=True)


def test_no_structured_or_reasoning_fields_without_the_options(openai_server):
    openai_backend(openai_server).generate("hi", "gpt-test")
    body = sent(openai_server)
    for name in ("response_format", "reasoning_effort", "chat_template_kwargs", "logit_bias"):
        assert name not in body


@pytest.mark.parametrize(
    ("think", "effort"), [(True, "medium"), ("low", "low"), ("high", "high"), (False, "none")]
)
def test_think_is_reasoning_effort_on_openai(openai_server, think, effort):
    openai_backend(openai_server).generate("hi", "gpt-test", think=think)
    body = sent(openai_server)
    assert body["reasoning_effort"] == effort
    assert "chat_template_kwargs" not in body


@pytest.mark.parametrize(
    ("think", "effort", "enabled"),
    [(True, "medium", True), ("high", "high", True), (False, None, False)],
)
def test_vllm_switches_thinking_in_the_chat_template(openai_server, think, effort, enabled):
    vllm_backend(openai_server).generate("hi", "gpt-test", think=think)
    body = sent(openai_server)
    assert body["chat_template_kwargs"] == {"enable_thinking": enabled}
    assert body.get("reasoning_effort") == effort


def test_pass_through_options_reach_the_api(openai_server):
    openai_backend(openai_server).generate(
        "hi",
        "gpt-test",
        options={"logit_bias": {50256: -100, "13": 5.5}, "frequency_penalty": 0.5},
        presence_penalty=-1,
    )
    body = sent(openai_server)
    assert body["logit_bias"] == {"50256": -100, "13": 5.5}
    assert body["frequency_penalty"] == 0.5 and body["presence_penalty"] == -1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"logit_bias": [1, 2]}, "logit_bias must be a dict of token ids"),
        ({"logit_bias": {"hello": 1}}, "logit_bias keys must be token ids"),
        ({"logit_bias": {"5": 101}}, r"logit_bias\[5\] must be a number from -100 to 100"),
        ({"logit_bias": {"5": True}}, r"logit_bias\[5\] must be a number"),
        ({"frequency_penalty": 2.5}, "frequency_penalty must be a number from -2 to 2"),
        ({"presence_penalty": "high"}, "presence_penalty must be a number from -2 to 2"),
        ({"top_k": 5}, "unknown backend option"),
    ],
)
def test_bad_pass_through_options_fail_before_sending(openai_server, options, message):
    before = chat_requests(openai_server)
    with pytest.raises(OptionError, match=message):
        openai_backend(openai_server).generate("hi", "gpt-test", options=options)
    assert chat_requests(openai_server) == before


# --- what comes back ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_become_thinking_apart_from_the_answer(openai_server, field):
    openai_server.reasoning_field = field
    openai_server.reasoning_pieces = ["The user ", "greets me. "]
    stream = openai_backend(openai_server).generate_stream("hello", "gpt-test", think=True)
    pieces = list(stream)
    response = stream.response
    assert response is not None
    assert "".join(pieces) == response.text == "You said: hello"
    assert response.thinking == "The user greets me. "
    assert response.thinking_tokens == 2
    assert response.completion_tokens == 2 + len(pieces)


def test_think_tags_in_the_content_are_split_out(openai_server):
    openai_server.reply_pieces = ["<thi", "nk>Paris is ", "the capital</th", "ink>\n\n", "Paris"]
    response = openai_backend(openai_server).generate("capital?", "gpt-test")
    assert response.text == "Paris"
    assert response.thinking == "Paris is the capital"


def test_thinking_with_a_schema_parses_only_the_answer(openai_server):
    openai_server.reasoning_pieces = ["Paris, ", "about 2.1M."]
    openai_server.json_reply = PARIS
    response = openai_backend(openai_server).generate(
        "France?", "gpt-test", schema=CAPITAL, think="low"
    )
    assert response.parsed["capital"] == "Paris"
    assert response.thinking == "Paris, about 2.1M."


def test_thinking_that_uses_the_whole_budget_warns(openai_server):
    openai_server.reasoning_pieces = ["step "] * 6
    response = openai_backend(openai_server).generate("hi", "gpt-test", think=True, max_tokens=4)
    assert response.text == "" and response.finish_reason == "length"
    assert response.thinking == "step " * 4 and response.thinking_tokens == 4
    assert response.warning is not None and "raise max_tokens" in response.warning


def test_the_loopback_server_refuses_a_non_strict_schema_as_openai_does(openai_server):
    import openai

    client = openai.OpenAI(base_url=openai_server.base_url, api_key=KEY, max_retries=0)
    loose = {"name": "answer", "schema": CAPITAL, "strict": True}
    with pytest.raises(openai.BadRequestError, match="'additionalProperties' is required"):
        client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": loose},
        )


def test_an_answer_that_breaks_the_schema_keeps_the_raw_text(openai_server):
    openai_server.json_reply = '{"capital": 3}'
    with pytest.raises(GenerationError, match="does not match the schema") as info:
        openai_backend(openai_server).generate("France?", "gpt-test", schema=CAPITAL)
    assert info.value.partial_text == '{"capital": 3}'


# --- faults ------------------------------------------------------------------------------------


def test_server_down_with_schema_and_think_is_unavailable():
    backend = OpenAIBackend({"base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key": KEY})
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        backend.generate("hi", "gpt-test", schema=CAPITAL, think=True)


def test_a_stream_dropped_mid_reasoning_keeps_the_partial_trace(openai_server):
    openai_server.reasoning_pieces = ["one ", "two ", "three ", "four "]
    openai_server.drop_after = 2
    stream = openai_backend(openai_server).generate_stream("hi", "gpt-test", think=True)
    with pytest.raises(GenerationError, match=r"dropped mid-answer|ended before"):
        list(stream)
    assert stream.thinking == "one two "
    assert stream.text == ""


def test_an_error_event_mid_reasoning_is_reported(openai_server):
    openai_server.reasoning_pieces = ["one ", "two "]
    openai_server.error_after = 1
    stream = openai_backend(openai_server).generate_stream("hi", "gpt-test", think=True)
    with pytest.raises(GenerationError, match="reported an error mid-answer"):
        list(stream)
    assert stream.thinking == "one "


def test_cancel_with_a_schema_keeps_the_partial_answer_unvalidated(openai_server):
    openai_server.token_delay = 0.05
    openai_server.reasoning_pieces = ["thinking "]
    openai_server.json_reply = json.dumps({"capital": " ".join(["Paris"] * 40)})
    stream = openai_backend(openai_server).generate_stream(
        "France?", "gpt-test", schema=CAPITAL, think=True
    )
    first = next(stream)
    stream.close()
    assert openai_server.disconnected.wait(3), "the server never saw the client leave"
    response = stream.response
    assert response is not None
    assert response.finish_reason == "cancelled"
    assert response.text == first and response.parsed is None
    assert response.thinking == "thinking "
