"""Structured output, thinking and pass-through options on the Ollama backend, on the wire.

Against the loopback Ollama: what each option puts in the ``/api/chat`` body (``format``,
``think``, ``options.num_ctx``, ``keep_alive``), what comes back (``parsed``, ``thinking``
apart from the text), what is refused before sending, and the faults.
"""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.errors import BackendUnavailable, GenerationError, OptionError
from tests.conftest import free_port
from tests.servers.ollama_server import FakeModel, OllamaTestServer, split_words

CITY = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}
ANSWER = '{"capital": "Paris", "population_millions": 68.2}'


class City(BaseModel):
    capital: str
    population_millions: float


@pytest.fixture
def server():
    models = [
        FakeModel("smollm:135m"),
        FakeModel("qwen3:0.6b", family="qwen3", capabilities=("completion", "thinking")),
    ]
    with OllamaTestServer(models) as srv:
        yield srv


def backend_for(server: OllamaTestServer, **settings) -> OllamaBackend:
    return OllamaBackend({"base_url": server.url, **settings})


def chats(server: OllamaTestServer) -> list[dict]:
    return [body for _method, path, body in server.requests if path == "/api/chat"]


def test_schema_is_sent_as_format_and_the_answer_is_parsed(server):
    server.reply_pieces = split_words(ANSWER)
    backend = backend_for(server)
    response = backend.generate("France?", "smollm:135m", schema=CITY)
    assert chats(server)[-1]["format"] == CITY
    assert response.parsed == {"capital": "Paris", "population_millions": 68.2}
    typed = backend.generate("France?", "smollm:135m", schema=City)
    assert chats(server)[-1]["format"] == City.model_json_schema()
    assert typed.parsed == City(capital="Paris", population_millions=68.2)
    assert typed.text == ANSWER


def test_json_mode_is_format_json(server):
    server.reply_pieces = ['{"a": ', "1}"]
    response = backend_for(server).generate("q", "smollm:135m", json_mode=True)
    body = chats(server)[-1]
    assert body["format"] == "json"
    assert "think" not in body  # without think, the model's default is left alone
    assert response.text == '{"a": 1}' and response.parsed is None


def test_an_answer_outside_the_schema_is_an_error_keeping_the_text(server):
    server.reply_pieces = ['{"capital": 3}']
    with pytest.raises(GenerationError, match="does not match the schema") as info:
        backend_for(server).generate("q", "smollm:135m", schema=CITY)
    assert info.value.partial_text == '{"capital": 3}'


@pytest.mark.parametrize(
    "options, which",
    [
        ({"schema": CITY, "format": "json"}, "schema"),
        ({"json_mode": True, "format": {"type": "object"}}, "json_mode"),
        ({"schema": CITY, "options": {"format": "json"}}, "schema"),
    ],
)
def test_format_with_schema_or_json_mode_is_refused_before_sending(server, options, which):
    with pytest.raises(OptionError, match=f"format and {which} both set Ollama's format"):
        backend_for(server).generate_stream("q", "smollm:135m", **options)
    assert chats(server) == []


@pytest.mark.parametrize("think", [True, False, "low", "medium", "high"])
def test_think_is_sent_as_given(server, think):
    backend_for(server).generate("q", "qwen3:0.6b", think=think)
    assert chats(server)[-1]["think"] == think


def test_thinking_chunks_become_thinking_apart_from_the_answer(server):
    stream = backend_for(server).generate_stream("why is the sky blue", "qwen3:0.6b", think=True)
    pieces = list(stream)
    response = stream.response
    assert "".join(pieces) == response.text == "You said: why is the sky blue"
    assert response.thinking == "Thinking about: why is the sky blue"
    assert "Thinking" not in response.text
    # a thinking model thinks by default, as on Ollama; think=False switches it off
    assert backend_for(server).generate("hi", "qwen3:0.6b").thinking == "Thinking about: hi"
    off = backend_for(server).generate("hi", "qwen3:0.6b", think=False)
    assert off.thinking is None and off.text == "You said: hi"


def test_thinking_and_schema_together(server):
    server.reply_pieces = split_words(ANSWER)
    response = backend_for(server).generate("France?", "qwen3:0.6b", schema=City, think="high")
    body = chats(server)[-1]
    assert body["think"] == "high" and body["format"] == City.model_json_schema()
    assert response.parsed.capital == "Paris"
    assert response.thinking == "Thinking about: France?"


def test_think_on_a_model_that_cannot_is_a_clear_error(server):
    backend = backend_for(server)
    with pytest.raises(OptionError) as info:
        backend.generate("q", "smollm:135m", think=True)
    message = str(info.value)
    assert "'smollm:135m' does not support thinking" in message
    assert "leave think out" in message
    assert chats(server)[-1]["think"] is True  # Ollama itself refused it
    assert backend.generate("q", "smollm:135m", think=False).text == "You said: q"


def test_thinking_that_uses_the_budget_warns(server):
    server.thinking_pieces = split_words("one two three four five six")
    response = backend_for(server).generate("q", "qwen3:0.6b", max_tokens=4)
    assert response.finish_reason == "length"
    assert response.text == "" and response.thinking == "one two three four "
    assert response.warning and "raise max_tokens" in response.warning


def test_pass_through_options_go_where_ollama_reads_them(server):
    backend = backend_for(server, keep_alive="5m")
    backend.generate("q", "smollm:135m", options={"num_ctx": 8192, "keep_alive": "10m"})
    body = chats(server)[-1]
    assert body["options"] == {"num_ctx": 8192}
    assert body["keep_alive"] == "10m"
    backend.generate("q", "smollm:135m", num_ctx=4096, keep_alive=0, max_tokens=9)
    body = chats(server)[-1]
    assert body["options"] == {"num_ctx": 4096, "num_predict": 9}
    assert body["keep_alive"] == 0
    backend.generate("q", "smollm:135m")
    assert "num_ctx" not in chats(server)[-1].get("options", {})
    assert chats(server)[-1]["keep_alive"] == "5m"  # the setting, when the request has none


BAD_PASS_THROUGH = [
    ({"num_ctx": 0}, "num_ctx must be a positive whole number of tokens"),
    ({"num_ctx": "8k"}, "num_ctx must be a positive whole number of tokens"),
    ({"num_ctx": True}, "num_ctx must be a positive whole number of tokens"),
    ({"num_ctx": 2048.0}, "num_ctx must be a positive whole number of tokens"),
    ({"keep_alive": "soon"}, "keep_alive must be a duration"),
    ({"keep_alive": [1]}, "keep_alive must be a duration"),
    (
        {"num_gpu": 1},
        "unknown backend option(s) num_gpu; this backend takes: format, keep_alive, num_ctx",
    ),
]


@pytest.mark.parametrize("options, message", BAD_PASS_THROUGH)
def test_bad_pass_through_values_are_refused_before_sending(server, options, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        backend_for(server).generate_stream("q", "smollm:135m", options=options)
    assert chats(server) == []


def test_server_down_with_the_new_options():
    backend = OllamaBackend({"base_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(BackendUnavailable, match="Ollama is not running"):
        backend.generate("q", "qwen3:0.6b", schema=CITY, think=True, options={"num_ctx": 512})


def test_dropped_mid_thinking_keeps_the_partial_trace(server):
    server.drop_after = 2  # two thinking chunks, then the connection is cut
    stream = backend_for(server).generate_stream("sky", "qwen3:0.6b", think=True)
    with pytest.raises(GenerationError, match=r"dropped mid-answer|ended before"):
        list(stream)
    assert stream.thinking == "Thinking about: "
    assert stream.text == ""


def test_dropped_mid_schema_answer_keeps_the_raw_text(server):
    server.reply_pieces = split_words(ANSWER)
    server.drop_after = 2
    with pytest.raises(GenerationError) as info:
        backend_for(server).generate("q", "smollm:135m", schema=CITY)
    assert info.value.partial_text == "".join(split_words(ANSWER)[:2])


def test_closing_while_thinking_stops_the_request(server):
    server.token_delay = 0.05
    stream = backend_for(server).generate_stream("a b c d e f g h", "qwen3:0.6b", schema=CITY)
    stream.close()  # the request is out and the trace streaming: stop it at the source
    assert server.disconnected.wait(5)
    response = stream.response
    assert response is not None and response.finish_reason == "cancelled"
    assert response.parsed is None  # nothing to validate in a stopped answer


def test_the_server_records_format_and_answers_bad_ones_as_ollama():
    import httpx

    with OllamaTestServer([FakeModel("smollm:135m")]) as srv:
        body = {"model": "smollm:135m", "messages": [{"role": "user", "content": "x"}]}
        answer = httpx.post(srv.url + "/api/chat", json={**body, "format": 3, "stream": False})
        assert answer.status_code == 500
        assert answer.json()["error"].endswith('expected "json" or a valid JSON schema')
        ok = httpx.post(srv.url + "/api/chat", json={**body, "format": CITY, "stream": False})
        assert ok.status_code == 200
        assert srv.requests[-1][2]["format"] == CITY
