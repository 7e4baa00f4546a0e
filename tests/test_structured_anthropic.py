"""Structured output and extended thinking on the Anthropic backend, on the wire.

The official ``anthropic`` client against the loopback Messages API: what each option puts
in the body (``output_config``, ``tools``/``tool_choice``, ``thinking`` and its budget),
the event stream the server sends for thinking and tool blocks, what comes back
(``parsed``, ``thinking`` apart from the text, thinking tokens), what is refused before
sending, and the faults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

anthropic = pytest.importorskip("anthropic")

from pydantic import BaseModel  # noqa: E402

from localmind_jupyter.backends.anthropic import AnthropicBackend  # noqa: E402
from localmind_jupyter.errors import (  # noqa: E402
    BackendUnavailable,
    GenerationError,
    OptionError,
)
from tests.conftest import free_port  # noqa: E402
from tests.servers.anthropic_server import AnthropicTestServer, split_pieces  # noqa: E402

KEY = "sk-ant-test-structured"
CITY = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}
ANSWER = '{"capital": "Paris", "population_millions": 68.2}'


class Mayor(BaseModel):
    name: str


class City(BaseModel):
    capital: str
    population_millions: float
    mayor: Mayor


NESTED = '{"capital": "Paris", "population_millions": 2.1, "mayor": {"name": "A"}}'


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[AnthropicTestServer]:
    with AnthropicTestServer(models=["claude-test"], api_key=KEY) as srv:
        yield srv


def backend_for(server: AnthropicTestServer, **settings) -> AnthropicBackend:
    return AnthropicBackend({"base_url": server.base_url, "api_key": KEY, **settings})


def messages_sent(server: AnthropicTestServer) -> list[dict]:
    return [body for method, path, _h, body in server.requests if path == "/v1/messages"]


# --- schema: structured outputs ----------------------------------------------------------


def test_schema_is_output_config_with_closed_objects_and_is_parsed(server):
    server.reply_pieces = split_pieces(ANSWER)
    response = backend_for(server).generate("France?", "claude-test", schema=CITY)
    body = messages_sent(server)[-1]
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": {**CITY, "additionalProperties": False}}
    }
    assert "tools" not in body and "thinking" not in body
    assert response.parsed == {"capital": "Paris", "population_millions": 68.2}
    assert response.text == ANSWER and response.finish_reason == "stop"


def test_a_pydantic_schema_is_closed_at_every_level(server):
    server.reply_pieces = split_pieces(NESTED)
    response = backend_for(server).generate("Paris?", "claude-test", schema=City)
    sent = messages_sent(server)[-1]["output_config"]["format"]["schema"]
    assert sent["additionalProperties"] is False
    assert sent["$defs"]["Mayor"]["additionalProperties"] is False
    assert sent["properties"] == City.model_json_schema()["properties"]
    assert response.parsed == City(capital="Paris", population_millions=2.1, mayor=Mayor(name="A"))


def test_the_server_refuses_an_open_object_schema_as_the_api_does(server):
    client = anthropic.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="additionalProperties"):
        client.messages.create(
            model="claude-test",
            max_tokens=64,
            messages=[{"role": "user", "content": "x"}],
            output_config={"format": {"type": "json_schema", "schema": CITY}},
        )


def test_an_answer_outside_the_schema_keeps_the_raw_text(server):
    server.reply_pieces = ['{"capital": ', "7}"]
    with pytest.raises(GenerationError, match="does not match the schema") as info:
        backend_for(server).generate("q", "claude-test", schema=CITY)
    assert info.value.partial_text == '{"capital": 7}'


# --- json_mode: a forced tool ------------------------------------------------------------


def test_json_mode_is_a_forced_tool_whose_input_streams_as_the_answer(server):
    server.reply_pieces = ['{"a": ', "1, ", '"b": [2]}']
    stream = backend_for(server).generate_stream("q", "claude-test", json_mode=True)
    pieces = list(stream)
    body = messages_sent(server)[-1]
    assert body["tools"] == [
        {
            "name": "json_answer",
            "description": "Give the answer as one JSON object.",
            "input_schema": {"type": "object"},
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "json_answer"}
    assert pieces == ['{"a": ', "1, ", '"b": [2]}']
    assert stream.response.text == '{"a": 1, "b": [2]}'
    assert stream.response.finish_reason == "stop"  # tool_use: the answer is complete


def test_json_mode_with_think_is_refused_before_sending(server):
    with pytest.raises(OptionError, match="json_mode on Anthropic is a forced tool call"):
        backend_for(server).generate_stream("q", "claude-test", json_mode=True, think=True)
    assert messages_sent(server) == []


# --- think: extended thinking ------------------------------------------------------------


@pytest.mark.parametrize(
    "think, max_tokens, budget",
    [
        ("low", 8000, 2000),
        ("medium", 8000, 4000),
        (True, 8000, 4000),
        ("high", 8000, 6000),
        ("low", 2000, 1024),  # the API's floor
        ("high", 1025, 1024),
    ],
)
def test_think_is_a_budget_from_the_level_and_max_tokens(server, think, max_tokens, budget):
    backend_for(server).generate("q", "claude-test", think=think, max_tokens=max_tokens)
    body = messages_sent(server)[-1]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens


def test_think_without_max_tokens_asks_for_room_to_think(server):
    backend = backend_for(server)  # the max_tokens setting: 1024
    backend.generate("q", "claude-test", think=True)
    body = messages_sent(server)[-1]
    assert body["max_tokens"] == 4096
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    backend_for(server, max_tokens=10000).generate("q", "claude-test", think="high")
    body = messages_sent(server)[-1]
    assert (body["max_tokens"], body["thinking"]["budget_tokens"]) == (10000, 7500)


def test_think_false_disables_and_no_think_sends_nothing(server):
    backend = backend_for(server)
    backend.generate("q", "claude-test", think=False)
    assert messages_sent(server)[-1]["thinking"] == {"type": "disabled"}
    assert messages_sent(server)[-1]["max_tokens"] == 1024
    backend.generate("q", "claude-test")
    assert "thinking" not in messages_sent(server)[-1]


BAD_WITH_THINKING = [
    ({"max_tokens": 1024}, "thinking on Anthropic needs max_tokens above 1024"),
    ({"max_tokens": 100}, "thinking on Anthropic needs max_tokens above 1024"),
    ({"temperature": 0.2}, "takes no temperature but 1 with thinking"),
    ({"top_p": 0.5}, "takes top_p only from 0.95 to 1 with thinking"),
]


@pytest.mark.parametrize("options, message", BAD_WITH_THINKING)
def test_what_thinking_cannot_take_is_refused_before_sending(server, options, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        backend_for(server).generate_stream("q", "claude-test", think="low", **options)
    assert messages_sent(server) == []


def test_temperature_one_and_high_top_p_go_with_thinking(server):
    backend_for(server).generate("q", "claude-test", think=True, temperature=1, top_p=0.95)
    assert messages_sent(server)[-1]["temperature"] == 1


def test_thinking_blocks_become_thinking_apart_from_the_answer(server):
    stream = backend_for(server).generate_stream("sky blue", "claude-test", think=True)
    pieces = list(stream)
    response = stream.response
    assert "".join(pieces) == response.text == "You said: sky blue"
    assert response.thinking == "Let me think: sky blue"
    assert response.thinking_tokens == len(split_pieces("Let me think: sky blue"))
    assert response.completion_tokens == response.thinking_tokens + len(pieces)


def test_thinking_and_schema_together(server):
    server.reply_pieces = split_pieces(ANSWER)
    response = backend_for(server).generate("France?", "claude-test", schema=CITY, think="low")
    body = messages_sent(server)[-1]
    assert body["thinking"]["type"] == "enabled" and "output_config" in body
    assert response.parsed["capital"] == "Paris"
    assert response.thinking == "Let me think: France?"


def test_thinking_that_uses_the_whole_budget_warns(server):
    server.thinking_pieces = ["hmm "] * 1100
    response = backend_for(server).generate("q", "claude-test", think="low", max_tokens=1100)
    assert response.finish_reason == "length"
    assert response.text == "" and response.thinking == "hmm " * 1100
    assert response.warning and "raise max_tokens" in response.warning


# --- the server's event stream -----------------------------------------------------------


def _events(server: AnthropicTestServer, body: dict) -> list[tuple[str, dict]]:
    import httpx

    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    payload = {"model": "claude-test", "messages": [{"role": "user", "content": "a b"}]}
    answer = httpx.post(
        server.base_url + "/v1/messages", json={**payload, **body, "stream": True}, headers=headers
    )
    events = []
    for chunk in answer.text.strip().split("\n\n"):
        kind, data = chunk.split("\n")
        events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_the_server_streams_thinking_then_text_in_the_api_order(server):
    events = _events(
        server, {"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    )
    kinds = [
        kind if kind != "content_block_delta" else data["delta"]["type"] for kind, data in events
    ]
    thinking = len(split_pieces("Let me think: a b"))
    text = len(split_pieces("You said: a b"))
    assert kinds == [
        "message_start",
        "content_block_start",
        "ping",
        *["thinking_delta"] * thinking,
        "signature_delta",
        "content_block_stop",
        "content_block_start",
        *["text_delta"] * text,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[-2][1]["usage"] == {
        "output_tokens": thinking + text,
        "output_tokens_details": {"thinking_tokens": thinking},
    }


def test_the_server_streams_a_forced_tool_as_input_json_deltas(server):
    tool = {"name": "t", "input_schema": {"type": "object"}}
    server.reply_pieces = ['{"k": ', "1}"]
    events = _events(
        server, {"max_tokens": 64, "tools": [tool], "tool_choice": {"type": "tool", "name": "t"}}
    )
    start = events[1][1]["content_block"]
    assert (start["type"], start["name"], start["input"]) == ("tool_use", "t", {})
    deltas = [data["delta"] for kind, data in events if kind == "content_block_delta"]
    assert {d["type"] for d in deltas} == {"input_json_delta"}
    assert "".join(d["partial_json"] for d in deltas) == '{"k": 1}'
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 500}}, "greater than or equal to 1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "must be greater than"),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "max_tokens": 4096,
                "tools": [{"name": "t", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "t"},
            },
            "Thinking may not be enabled when tool_choice forces tool use.",
        ),
    ],
)
def test_the_server_refuses_what_the_api_refuses(server, body, message):
    client = anthropic.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0)
    params = {"model": "claude-test", "max_tokens": 2048, **body}
    with pytest.raises(anthropic.BadRequestError, match=re.escape(message)):
        client.messages.create(messages=[{"role": "user", "content": "x"}], **params)


# --- faults ------------------------------------------------------------------------------


def test_server_down_with_the_new_options():
    backend = AnthropicBackend({"base_url": f"http://127.0.0.1:{free_port()}", "api_key": KEY})
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        backend.generate("q", "claude-test", schema=CITY, think=True)


def test_dropped_mid_thinking_keeps_the_partial_trace(server):
    server.drop_after = 2
    stream = backend_for(server).generate_stream("sky", "claude-test", think=True)
    with pytest.raises(GenerationError, match="dropped"):
        list(stream)
    assert stream.thinking == "Let me "
    assert stream.text == ""


def test_error_event_mid_json_answer_keeps_the_raw_text(server):
    server.reply_pieces = ['{"a": ', "1, ", '"b": 2}']
    server.error_after = 3  # the empty first input_json_delta, then two pieces
    with pytest.raises(GenerationError, match="overloaded") as info:
        backend_for(server).generate("q", "claude-test", json_mode=True)
    assert info.value.partial_text == '{"a": 1, '


def test_closing_while_thinking_stops_the_request(server):
    server.token_delay = 0.05
    server.thinking_pieces = ["t "] * 200
    stream = backend_for(server).generate_stream("q", "claude-test", think=True)
    stream.close()
    assert server.disconnected.wait(5), "the server never saw the client leave"
    assert server.chunks_sent < 100
    assert stream.response is not None and stream.response.finish_reason == "cancelled"


def test_closing_objects_touches_schemas_only_not_data():
    from localmind_jupyter.backends._anthropic_params import closed_objects

    schema = {
        "type": "array",
        "items": {"type": "object", "properties": {"tag": {"enum": [{"type": "object"}]}}},
        "default": [{"type": "object"}],
    }
    closed = closed_objects(schema)
    assert closed["items"]["additionalProperties"] is False
    assert closed["items"]["properties"]["tag"] == {"enum": [{"type": "object"}]}
    assert closed["default"] == [{"type": "object"}]
    assert "additionalProperties" not in schema["items"]  # the user's schema is left alone
    explicit = {"type": "object", "additionalProperties": {"type": "string"}}
    assert closed_objects(explicit) == explicit  # said otherwise: the API will say why not
