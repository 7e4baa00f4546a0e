"""``POST /localmind/api/generate`` with ``schema``, ``json_mode``, ``think`` and ``options``,
in a real Jupyter server, against a scripted backend put into the server's loader: what
reaches the backend, the ``thinking`` lines, ``parsed`` in ``done``, and each bad input's 400."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from localmind_jupyter.backends import Usage
from localmind_jupyter.backends._response import Thinking
from tests.scripted_backend import PlainBackend, ScriptedBackend, install
from tests.test_server_extension import (  # noqa: F401 - the fixtures, shared
    api,
    extension_config,
    extra_server_config,
    in_thread,
    jp_server_config,
    localmind_config,
    ndjson,
    state,
    url,
)

pytest_plugins = ["pytest_jupyter.jupyter_server"]

CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}


@pytest.fixture
def scripted(state) -> ScriptedBackend:  # noqa: F811
    backend = install(ScriptedBackend(name="scripted"), state.loader())
    install(PlainBackend(name="plain"), state.loader())
    assert isinstance(backend, ScriptedBackend)
    return backend


async def generate(jp_fetch, body: dict) -> list[dict]:
    chunks: list[bytes] = []
    response = await jp_fetch(
        "localmind",
        "api",
        "generate",
        method="POST",
        body=json.dumps({"prompt": "France?", "model": "scripted:m", **body}),
        streaming_callback=chunks.append,
    )
    assert response.code == 200
    return ndjson(chunks)


async def test_thinking_streams_apart_and_done_carries_parsed(jp_fetch, scripted):
    scripted.script = [
        Thinking("capital of "),
        Thinking("France"),
        '{"capital": "Paris", ',
        '"population_millions": 2.1}',
        Usage(3, 9, "stop", thinking_tokens=4),
    ]
    body = {"schema": CAPITAL, "think": "high", "options": {"num_ctx": 4096}}
    lines = await generate(jp_fetch, body)
    assert [line["type"] for line in lines] == [
        "start",
        "thinking",
        "thinking",
        "text",
        "text",
        "done",
    ]
    assert [line["text"] for line in lines[1:3]] == ["capital of ", "France"]
    done = lines[-1]["response"]
    assert done["parsed"] == {"capital": "Paris", "population_millions": 2.1}
    assert done["thinking"] == "capital of France" and done["thinking_tokens"] == 4
    assert "France" not in done["text"]
    sent = scripted.sent[0]
    assert sent.output_schema.json_schema == CAPITAL
    assert (sent.think, sent.extra, sent.json_mode) == ("high", {"num_ctx": 4096}, False)


async def test_json_mode_and_no_thinking_reach_the_backend(jp_fetch, scripted):
    scripted.script = ['{"a": 1}']
    lines = await generate(jp_fetch, {"json_mode": True, "think": False})
    assert lines[-1]["response"]["parsed"] is None  # no schema: nothing validated
    assert (scripted.sent[0].json_mode, scripted.sent[0].think) == (True, False)


async def test_an_answer_that_does_not_validate_ends_with_an_error_line(jp_fetch, scripted):
    scripted.script = ['{"capital": "Paris"}']
    lines = await generate(jp_fetch, {"schema": CAPITAL})
    assert lines[-1]["type"] == "error"
    assert "'population_millions' is a required property" in lines[-1]["message"]
    assert lines[-1]["partial_text"] == '{"capital": "Paris"}'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"schema": '{"type": "object"}'}, "'schema' must be a JSON Schema object, not a string"),
        ({"schema": {"type": "objekt"}}, "not a valid JSON Schema at type"),
        ({"json_mode": "yes"}, "'json_mode' must be true or false, not a string"),
        ({"think": "extreme"}, '\'think\' must be true, false, "low", "medium" or "high"'),
        ({"options": ["num_ctx"]}, "'options' must be an object of backend option names"),
        ({"options": {"top_k": 3}}, "unknown backend option(s) top_k; this backend takes"),
        ({"schema": CAPITAL, "model": "plain:m"}, "cannot constrain its output to JSON"),
        ({"think": True, "model": "plain:m"}, "has no separate thinking"),
    ],
)
async def test_bad_structured_options_are_400s_before_sending(api, scripted, body, message):  # noqa: F811
    status, answer, _ = await api(
        "POST", "generate", body={"prompt": "France?", "model": "scripted:m", **body}
    )
    assert status == 400, answer
    assert message in answer["message"]
    assert scripted.sent == []


async def test_closing_the_request_while_thinking_stops_the_generation(
    http_server_client, jp_base_url, jp_auth_header, scripted
):
    pause = lambda: time.sleep(0.01)  # noqa: E731
    scripted.script = [Thinking("x")] + [pause, Thinking("y")] * 2000 + ["never"]
    target = url(http_server_client, jp_base_url, "localmind/api/generate")
    body = {"prompt": "France?", "model": "scripted:m", "think": True}
    async with (
        httpx.AsyncClient(headers=jp_auth_header, timeout=10) as client,
        client.stream("POST", target, json=body) as response,
    ):
        async for line in response.aiter_lines():
            if line and json.loads(line)["type"] == "thinking":
                break  # leaving the block closes the connection mid-trace
    assert await in_thread(scripted.closed.wait, 5), "the backend kept thinking"
    assert len(scripted.sent) == 1
