"""Tests for the OpenAI-compatible test server, driven by the real ``openai`` client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.servers.openai_server import OpenAITestServer, split_pieces

API_KEY = "sk-test-123"
MODELS = ["gpt-test", "smol-chat"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(models=MODELS, api_key=API_KEY) as srv:
        yield srv


@pytest.fixture
def client(server: OpenAITestServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=10)


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _drain(stream: Any, received: list[str]) -> None:
    for chunk in stream:
        received.append(chunk.choices[0].delta.content or "")


def _raw(
    server: OpenAITestServer, method: str, path: str, body: bytes | None = None
) -> tuple[int, Any]:
    """Plain urllib request (for requests the SDK would refuse to build)."""
    request = urllib.request.Request(
        server.base_url + path,
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_split_pieces_round_trip() -> None:
    text = "You said: hello  there\nworld "
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert pieces[:3] == ["You ", "said: ", "hello  "]


def test_models_list_and_retrieve(server: OpenAITestServer, client: openai.OpenAI) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.base_url.endswith("/v1")
    models = client.models.list()
    assert [m.id for m in models] == MODELS
    assert all(m.object == "model" and m.owned_by == "test" for m in models)
    assert client.models.retrieve("smol-chat").id == "smol-chat"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("nope")
    assert info.value.code == "model_not_found"


def test_non_stream_completion(server: OpenAITestServer, client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hello there world"},
        ],
        temperature=0.7,
        top_p=0.9,
        seed=42,
    )
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: hello there world"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    method, path, headers, body = server.requests[-1]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert "authorization" not in headers
    assert API_KEY not in json.dumps(headers)
    assert body["temperature"] == 0.7
    assert body["top_p"] == 0.9
    assert body["seed"] == 42
    assert server.last_params["seed"] == 42


def test_stream_completion_with_usage(server: OpenAITestServer, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smol-chat",
        messages=_user("stream me please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == "smol-chat" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream me please"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop"
    assert set(finish[:-1]) == {None}
    assert chunks[-2].choices[0].delta.content is None
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 5
    assert last.usage.total_tokens == last.usage.prompt_tokens + 5
    assert all(c.usage is None for c in chunks[:-1])
    assert server.chunks_sent == 5


def test_stream_usage_absent_unless_requested(
    server: OpenAITestServer, client: openai.OpenAI
) -> None:
    chunks = list(
        client.chat.completions.create(model="gpt-test", messages=_user("hi"), stream=True)
    )
    assert all(c.choices and c.usage is None for c in chunks)

    server.include_usage_ignored = True
    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=_user("hi"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.choices and c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hi"


def test_reply_pieces_override(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.reply_pieces = [f"t{i} " for i in range(50)]
    chunks = list(
        client.chat.completions.create(model="gpt-test", messages=_user("x"), stream=True)
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert pieces == server.reply_pieces
    assert server.chunks_sent == 50


def test_max_tokens_truncates_with_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-test", messages=_user("one two three four"), max_tokens=3
    )
    assert completion.choices[0].message.content == "You said: one "
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3

    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=_user("one two three four"),
            max_completion_tokens=2,
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: "
    assert chunks[-1].choices[0].finish_reason == "length"

    exact = client.chat.completions.create(model="gpt-test", messages=_user("a"), max_tokens=3)
    assert exact.choices[0].finish_reason == "stop"


def test_stop_sequences(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-test", messages=_user("alpha beta gamma"), stop="gam"
    )
    assert completion.choices[0].message.content == "You said: alpha beta "
    assert completion.choices[0].finish_reason == "stop"

    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=_user("alpha beta gamma"),
            stop=["zzz", "ta g", "alpha"],
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: "
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_wrong_api_key_is_401_without_echoing_key(server: OpenAITestServer) -> None:
    wrong = "sk-wrong-key-0123456789"
    bad = openai.OpenAI(base_url=server.base_url, api_key=wrong, max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    err = info.value
    assert err.status_code == 401
    assert err.code == "invalid_api_key"
    assert err.type == "invalid_request_error"
    raw = err.response.text
    assert wrong not in raw
    assert API_KEY not in raw
    assert wrong not in str(err)
    assert "Incorrect API key provided: sk-wr" in raw
    assert json.loads(raw)["error"]["param"] is None

    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-test", messages=_user("x"), stream=True)
    assert all("authorization" not in headers for _, _, headers, _ in server.requests)


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-missing", messages=_user("x"))
    assert info.value.code == "model_not_found"
    assert "The model `gpt-missing` does not exist or you do not have access to it." in str(
        info.value
    )


@pytest.mark.parametrize("temperature", [2.5, -0.1])
def test_temperature_out_of_range_is_400(client: openai.OpenAI, temperature: float) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-test", messages=_user("x"), temperature=temperature
        )
    assert info.value.param == "temperature"
    assert info.value.type == "invalid_request_error"


def test_raw_validation_errors(server: OpenAITestServer) -> None:
    status, body = _raw(server, "POST", "/chat/completions", b"{not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert server.requests[-1][3] is None

    status, body = _raw(server, "POST", "/chat/completions", json.dumps({"messages": []}).encode())
    assert status == 400
    assert "model" in body["error"]["message"]

    status, body = _raw(server, "POST", "/chat/completions", json.dumps({"model": "x"}).encode())
    assert status == 400
    assert body["error"]["param"] == "messages"

    status, body = _raw(server, "GET", "/nowhere")
    assert status == 404
    assert body["error"]["message"] == "Invalid URL (GET /v1/nowhere)"


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_fail_status(
    server: OpenAITestServer, client: openai.OpenAI, status: int, exc_type: type[Exception]
) -> None:
    server.fail_status = status
    for stream in (False, True):
        with pytest.raises(exc_type) as info:
            client.chat.completions.create(model="gpt-test", messages=_user("x"), stream=stream)
        assert isinstance(info.value, openai.APIStatusError)
        assert info.value.status_code == status
    server.reset_faults()
    assert client.chat.completions.create(model="gpt-test", messages=_user("x")).choices


def test_error_event_mid_stream(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.error_after = 2
    received: list[str] = []
    stream = client.chat.completions.create(model="gpt-test", messages=_user("a b c"), stream=True)
    with pytest.raises(openai.APIError) as info:
        _drain(stream, received)
    err = info.value
    assert type(err) is openai.APIError  # not a status error, not a connection error
    assert "".join(received) == "You said: "
    assert isinstance(err.body, dict)
    assert err.body["type"] == "server_error"


def test_dropped_stream_raises(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.drop_after = 3
    received: list[str] = []
    stream = client.chat.completions.create(model="gpt-test", messages=_user("a b c"), stream=True)
    with pytest.raises(openai.APIConnectionError):
        _drain(stream, received)
    assert "".join(received) == "You said: a "
    assert server.chunks_sent == 3


def test_client_close_sets_disconnected(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.token_delay = 0.05
    server.reply_pieces = ["word "] * 200
    stream = client.chat.completions.create(model="gpt-test", messages=_user("x"), stream=True)
    iterator = iter(stream)
    next(iterator)
    next(iterator)
    assert not server.disconnected.is_set()
    stream.close()
    assert server.disconnected.wait(5)
    assert server.disconnects == 1
    assert server.chunks_sent < 200
    # The server keeps serving new connections afterwards.
    server.reset_faults()
    server.reply_pieces = None
    assert client.chat.completions.create(model="gpt-test", messages=_user("x")).choices


def test_start_stop_idempotent() -> None:
    srv = OpenAITestServer()
    srv.start()
    srv.start()
    url = srv.base_url
    plain = openai.OpenAI(base_url=url, api_key="anything", max_retries=0, timeout=10)
    assert [m.id for m in plain.models.list()] == ["gpt-test"]
    srv.stop()
    srv.stop()
    with pytest.raises(openai.APIConnectionError):
        plain.models.list()


def test_stop_aborts_inflight_stream() -> None:
    srv = OpenAITestServer().start()
    srv.token_delay = 0.05
    srv.reply_pieces = ["w "] * 1000
    plain = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=10)
    stream = plain.chat.completions.create(model="gpt-test", messages=_user("x"), stream=True)
    next(iter(stream))
    started = time.monotonic()
    srv.stop()
    with pytest.raises(openai.APIConnectionError):
        _drain(stream, [])
    assert time.monotonic() - started < 3


def test_cli_mode() -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.servers.openai_server", "--port", "0"),
            *("--reply-chunks", "100", "--api-key", "sk-cli", "--lifetime", "60"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        cli_client = openai.OpenAI(base_url=base_url, api_key="sk-cli", max_retries=0, timeout=10)
        assert [m.id for m in cli_client.models.list()] == ["gpt-test"]
        chunks = list(
            cli_client.chat.completions.create(model="gpt-test", messages=_user("x"), stream=True)
        )
        pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
        assert len(pieces) == 100
        assert pieces[0] == "tok0 "
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()
            proc.stdout.close()
