"""The OpenAI-compatible backend through the real ``openai`` client against a loopback server."""

from __future__ import annotations

import pytest

from localmind_jupyter.backends.openai import PRESETS, OpenAIBackend
from localmind_jupyter.errors import (
    BackendUnavailable,
    ConfigError,
    DownloadError,
    GenerationError,
    ModelNotFound,
    OptionError,
)
from tests.conftest import free_port

KEY = "sk-test-secret-123456"


def make_backend(server, **settings) -> OpenAIBackend:
    return OpenAIBackend({"base_url": server.base_url, "api_key": KEY, **settings})


def test_stream_yields_pieces_that_join_to_the_response(openai_server):
    backend = make_backend(openai_server)
    stream = backend.generate_stream("hello there friend", "gpt-test")
    pieces = list(stream)
    assert len(pieces) >= 4
    response = stream.response
    assert response is not None
    assert "".join(pieces) == response.text == "You said: hello there friend"
    assert response.model == "gpt-test"
    assert response.backend == "openai"
    assert response.finish_reason == "stop"
    assert response.prompt_tokens and response.prompt_tokens > 0
    assert response.completion_tokens == len(pieces)
    assert response.time_to_first_token is not None and response.time_to_first_token > 0
    assert response.duration >= response.time_to_first_token
    assert response.tokens_per_second and response.tokens_per_second > 0


def test_generate_matches_stream_and_sends_usage_request(openai_server):
    response = make_backend(openai_server).generate("ping", "gpt-test")
    assert response.text == "You said: ping"
    assert openai_server.last_params["stream_options"] == {"include_usage": True}


def test_options_are_mapped_to_the_api(openai_server):
    backend = make_backend(openai_server)
    backend.generate(
        "question",
        "gpt-test",
        system="be brief",
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        temperature=0.2,
        top_p=0.9,
        seed=7,
        max_tokens=50,
        stop=["\n\n"],
    )
    params = openai_server.last_params
    assert params["temperature"] == 0.2
    assert params["top_p"] == 0.9
    assert params["seed"] == 7
    assert params["max_tokens"] == 50
    assert params["stop"] == ["\n\n"]
    body = openai_server.requests[-1][3]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][0]["content"] == "be brief"
    assert body["messages"][-1]["content"] == "question"


def test_max_tokens_gives_length_and_stop_cuts(openai_server):
    backend = make_backend(openai_server)
    short = backend.generate("one two three four five", "gpt-test", max_tokens=2)
    assert short.finish_reason == "length"
    assert short.text == "You said: "
    stopped = backend.generate("alpha beta gamma", "gpt-test", stop="beta")
    assert stopped.text == "You said: alpha "


def test_close_mid_stream_disconnects_and_keeps_partial(openai_server):
    openai_server.token_delay = 0.05
    backend = make_backend(openai_server)
    stream = backend.generate_stream(" ".join(["word"] * 40), "gpt-test")
    first = [next(stream), next(stream)]
    stream.close()
    assert openai_server.disconnected.wait(3), "the server never saw the client leave"
    assert openai_server.chunks_sent < 20
    assert stream.response is not None
    assert stream.response.finish_reason == "cancelled"
    assert stream.response.text == "".join(first)


def test_leaving_the_loop_stops_the_source(openai_server):
    openai_server.token_delay = 0.05
    backend = make_backend(openai_server)
    for index, _piece in enumerate(backend.generate_stream(" ".join(["w"] * 40), "gpt-test")):
        if index == 1:
            break
    assert openai_server.disconnected.wait(3)
    assert openai_server.chunks_sent < 20


def test_unknown_model_lists_what_is_served(openai_server):
    with pytest.raises(ModelNotFound) as info:
        make_backend(openai_server).generate("hi", "no-such-model")
    message = str(info.value)
    assert "no-such-model" in message
    assert "gpt-test" in message and "smol-chat" in message


def test_server_down_is_backend_unavailable():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend({"base_url": url, "api_key": KEY})
    available, reason = backend.check_availability()
    assert not available
    assert "connection refused" in reason and url in reason
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        backend.generate("hi", "gpt-test")


def test_wrong_key_is_reported_without_the_key(openai_server):
    wrong = "sk-wrong-key-abcdefgh"
    backend = OpenAIBackend({"base_url": openai_server.base_url, "api_key": wrong})
    available, reason = backend.check_availability()
    assert not available and "API key" in reason
    with pytest.raises(BackendUnavailable) as info:
        backend.generate("hi", "gpt-test")
    assert "OPENAI_API_KEY" in str(info.value)
    for text in (str(info.value), reason, repr(backend), repr(backend.settings)):
        assert wrong not in text
    assert wrong not in str(backend.get_backend_info())


def test_drop_mid_stream_keeps_partial_text(openai_server):
    openai_server.drop_after = 3
    stream = make_backend(openai_server).generate_stream("a b c d e f g h", "gpt-test")
    received: list[str] = []
    with pytest.raises(GenerationError, match="dropped") as info:
        for piece in stream:
            received.append(piece)
    assert len(received) == 3
    assert info.value.partial_text == "".join(received)


def test_error_event_mid_stream(openai_server):
    openai_server.error_after = 2
    stream = make_backend(openai_server).generate_stream("a b c d e f", "gpt-test")
    with pytest.raises(GenerationError, match="mid-answer") as info:
        list(stream)
    assert info.value.partial_text == "You said: "


@pytest.mark.parametrize(("status", "pattern"), [(500, "HTTP 500"), (429, "rate limiting")])
def test_http_errors_before_streaming(openai_server, status, pattern):
    openai_server.fail_status = status
    with pytest.raises(GenerationError, match=pattern):
        make_backend(openai_server).generate("hi", "gpt-test")


def test_bad_options_fail_before_any_request(openai_server):
    backend = make_backend(openai_server)
    with pytest.raises(OptionError, match="top_k"):
        backend.generate("hi", "gpt-test", top_k=3)
    with pytest.raises(OptionError, match="temperature"):
        backend.generate("hi", "gpt-test", temperature=5)
    with pytest.raises(OptionError, match="messages"):
        backend.generate("hi", "gpt-test", messages=[{"role": "robot", "content": "x"}])
    assert openai_server.requests == []


def test_old_server_without_usage_still_answers(openai_server):
    openai_server.include_usage_ignored = True
    response = make_backend(openai_server).generate("hi you", "gpt-test")
    assert response.text == "You said: hi you"
    assert response.completion_tokens == 4 and response.tokens_approximate  # counted pieces


def test_nothing_to_download(openai_server):
    with pytest.raises(DownloadError, match="nothing to download"):
        make_backend(openai_server).download_model("gpt-test")


def test_environment_key_is_not_sent_to_another_server(openai_server, monkeypatch):
    """OPENAI_API_KEY is OpenAI's: a server on the LAN gets only a key configured for it."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backend = OpenAIBackend({"base_url": openai_server.base_url})
    available, reason = backend.check_availability()
    assert not available and "HTTP 401" in reason
    with pytest.raises(BackendUnavailable, match=r"sent only to api\.openai\.com"):
        backend.generate("hi", "gpt-test")
    assert backend.get_backend_info()["api_key_set"] is False
    assert openai_server.credentials
    assert all(KEY not in str(sent) for _, _, sent in openai_server.credentials)
    configured = OpenAIBackend({"base_url": openai_server.base_url, "api_key": KEY})
    assert configured.list_models() == ["gpt-test", "smol-chat"]
    assert configured.get_backend_info()["api_key_set"] is True
    assert openai_server.credentials[-1][2] == {"authorization": f"Bearer {KEY}"}


def test_cloud_without_key_says_how_to_set_it():
    backend = OpenAIBackend({})
    assert backend.base_url == PRESETS["openai"]
    available, reason = backend.check_availability()
    assert not available and "OPENAI_API_KEY" in reason


def test_presets_and_bad_settings():
    assert OpenAIBackend({"preset": "vllm"}).base_url == "http://localhost:8000/v1"
    assert OpenAIBackend({"preset": "lmstudio"}).base_url == "http://localhost:1234/v1"
    with pytest.raises(ConfigError, match="unknown preset"):
        OpenAIBackend({"preset": "nope"})
    with pytest.raises(ConfigError, match="base_ur"):
        OpenAIBackend({"base_ur": "http://x"})
    with pytest.raises(ConfigError, match="read_timeout"):
        OpenAIBackend({"read_timeout": "soon"})


def test_iterating_a_temporary_stream_yields_everything(openai_server):
    """``for piece in backend.generate_stream(...)``: the stream object is dropped at once."""
    pieces = [p for p in make_backend(openai_server).generate_stream("one two three", "gpt-test")]
    assert "".join(pieces) == "You said: one two three"
