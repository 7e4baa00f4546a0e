"""The Ollama backend against the Ollama-compatible loopback server."""

from __future__ import annotations

import re

import pytest

from localmind_jupyter.backends.ollama import DEFAULT_BASE_URL, OllamaBackend, normalize_host
from localmind_jupyter.errors import (
    BackendUnavailable,
    ConfigError,
    GenerationError,
    ModelNotFound,
    OptionError,
)
from tests.conftest import free_port


def make_backend(server, **settings) -> OllamaBackend:
    return OllamaBackend({"base_url": server.url, **settings})


def last_body(server, path: str = "/api/chat") -> dict:
    return [body for _method, p, body in server.requests if p == path][-1]


def test_stream_pieces_join_to_response_with_ollama_stats(ollama_server):
    stream = make_backend(ollama_server).generate_stream("hello there friend", "smollm:135m")
    pieces = list(stream)
    assert len(pieces) == 5
    response = stream.response
    assert "".join(pieces) == response.text == "You said: hello there friend"
    assert (response.model, response.backend) == ("smollm:135m", "ollama")
    assert response.finish_reason == "stop"
    assert response.completion_tokens == 5
    assert response.prompt_tokens and response.prompt_tokens > 0
    assert response.time_to_first_token > 0
    assert response.duration >= response.time_to_first_token
    assert response.tokens_per_second > 0


def test_generate_equals_stream(ollama_server):
    response = make_backend(ollama_server).generate("ping", "SmolLM:135m")  # case-insensitive
    assert response.text == "You said: ping"


def test_common_options_map_to_ollama_names(ollama_server):
    make_backend(ollama_server, keep_alive="10m").generate(
        "q",
        "smollm:135m",
        system="be brief",
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        temperature=0.3,
        top_p=0.8,
        seed=42,
        max_tokens=64,
        stop=["END"],
    )
    body = last_body(ollama_server)
    assert body["options"] == {
        "temperature": 0.3,
        "top_p": 0.8,
        "seed": 42,
        "num_predict": 64,
        "stop": ["END"],
    }
    assert body["keep_alive"] == "10m"
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["stream"] is True


def test_max_tokens_and_stop_change_the_answer(ollama_server):
    backend = make_backend(ollama_server)
    short = backend.generate("one two three four", "smollm:135m", max_tokens=2)
    assert short.finish_reason == "length" and short.text == "You said: "
    cut = backend.generate("alpha beta gamma", "smollm:135m", stop="beta")
    assert cut.text == "You said: alpha "


def test_close_mid_stream_stops_the_server(ollama_server):
    ollama_server.token_delay = 0.05
    stream = make_backend(ollama_server).generate_stream(" ".join(["w"] * 60), "smollm:135m")
    got = [next(stream), next(stream)]
    stream.close()
    assert ollama_server.disconnected.wait(3), "the server never saw the disconnect"
    assert ollama_server.chunks_sent < 20
    assert stream.response.finish_reason == "cancelled"
    assert stream.response.text == "".join(got)


def test_leaving_the_loop_stops_the_server(ollama_server):
    ollama_server.token_delay = 0.05
    for index, _ in enumerate(
        make_backend(ollama_server).generate_stream(" ".join(["w"] * 60), "smollm:135m")
    ):
        if index == 1:
            break
    assert ollama_server.disconnected.wait(3)
    assert ollama_server.chunks_sent < 20


def test_unknown_model_says_how_to_pull_and_lists_installed(ollama_server):
    with pytest.raises(ModelNotFound) as info:
        make_backend(ollama_server).generate("hi", "llama9:70b")
    message = str(info.value)
    assert "model 'llama9:70b' is not installed in Ollama" in message
    assert "%localmind pull llama9:70b" in message
    assert "smollm:135m" in message


def test_invalid_model_name(ollama_server):
    with pytest.raises(ModelNotFound, match="not a valid Ollama model name"):
        make_backend(ollama_server).generate("hi", "bad//name::")


def test_server_down_says_how_to_start_it():
    url = f"http://127.0.0.1:{free_port()}"
    backend = OllamaBackend({"base_url": url})
    available, reason = backend.check_availability()
    assert not available
    assert reason.startswith(f"connection refused at {url}")
    with pytest.raises(BackendUnavailable) as info:
        backend.generate("hi", "smollm:135m")
    message = str(info.value)
    assert f"Ollama is not running at {url}" in message
    assert "ollama serve" in message and "backends.ollama.settings.base_url" in message


def test_drop_mid_stream_keeps_partial(ollama_server):
    ollama_server.drop_after = 3
    received: list[str] = []
    stream = make_backend(ollama_server).generate_stream("a b c d e f g", "smollm:135m")
    with pytest.raises(GenerationError, match="dropped mid-answer") as info:
        for piece in stream:
            received.append(piece)
    assert len(received) == 3
    assert info.value.partial_text == "".join(received) == stream.text


def test_in_band_error_line_keeps_partial(ollama_server):
    ollama_server.error_after = 2
    with pytest.raises(GenerationError, match="unexpected EOF") as info:
        make_backend(ollama_server).generate("a b c d e", "smollm:135m")
    assert info.value.partial_text == "You said: "


def test_http_500_before_streaming(ollama_server):
    ollama_server.fail_status = 500
    with pytest.raises(GenerationError, match="HTTP 500"):
        make_backend(ollama_server).generate("hi", "smollm:135m")


def test_read_timeout_mid_stream_keeps_partial(ollama_server):
    ollama_server.stall_after = 2
    ollama_server.stall_seconds = 5
    backend = make_backend(ollama_server, read_timeout=0.5)
    with pytest.raises(GenerationError, match="read_timeout") as info:
        backend.generate("a b c d", "smollm:135m")
    assert info.value.partial_text == "You said: "


def test_bad_options_fail_before_any_request(ollama_server):
    backend = make_backend(ollama_server)
    with pytest.raises(OptionError, match="max_tokens"):
        backend.generate("hi", "smollm:135m", max_tokens=0)
    with pytest.raises(OptionError, match="unknown option"):
        backend.generate("hi", "smollm:135m", num_gpu=1)
    assert not [r for r in ollama_server.requests if r[1] == "/api/chat"]


BAD_OLLAMA_OPTIONS = [
    ({"keep_alive": True}, "keep_alive must be a duration"),
    ({"keep_alive": [5]}, "keep_alive must be a duration"),
    ({"keep_alive": "5 minutes"}, "keep_alive must be a duration"),
    ({"keep_alive": "10"}, "keep_alive must be a duration"),
    ({"keep_alive": float("inf")}, "keep_alive must be a duration"),
    ({"format": "yaml"}, 'format must be "json" or a JSON schema'),
    ({"format": 3}, 'format must be "json" or a JSON schema'),
    ({"seed": 10**30}, "seed must be an integer from 0 to 2147483647"),
    ({"seed": -1}, "seed must be an integer from 0 to 2147483647"),
]


def test_ollama_options_are_checked_before_sending(ollama_server):
    backend = make_backend(ollama_server)
    for options, message in BAD_OLLAMA_OPTIONS:
        with pytest.raises(OptionError, match=re.escape(message)):
            backend.generate_stream("hi", "smollm:135m", **options)
    assert not [r for r in ollama_server.requests if r[1] == "/api/chat"]
    good = [
        {"keep_alive": "1h30m"},
        {"keep_alive": "0"},
        {"keep_alive": -1},
        {"keep_alive": 2.5},
        {"format": "json"},
        {"format": {"type": "object"}},
        {"seed": 2**31 - 1},
    ]
    for options in good:  # what Ollama accepts is still sent as given
        assert backend.generate("hi", "smollm:135m", **options).text == "You said: hi"
        name, value = next(iter(options.items()))
        body = last_body(ollama_server)
        assert (body["options"][name] if name == "seed" else body[name]) == value


def test_list_details_load_and_unload(ollama_server):
    backend = make_backend(ollama_server)
    assert backend.list_models() == ["smollm:135m", "qwen2.5:0.5b"]
    details = backend.installed_model_details()
    assert details[0]["size"] == 91_739_413
    assert details[1]["details"]["family"] == "qwen2"
    backend.load_model("smollm:135m")
    assert last_body(ollama_server) == {"model": "smollm:135m", "messages": []}
    backend.unload_model("smollm:135m")
    assert last_body(ollama_server)["keep_alive"] == 0
    with pytest.raises(ModelNotFound):
        backend.load_model("ghost:1b")


def test_availability_and_info(ollama_server):
    backend = make_backend(ollama_server)
    assert backend.check_availability() == (True, None)
    info = backend.get_backend_info()
    assert info["base_url"] == ollama_server.url
    assert info["version"] == ollama_server.version
    assert info["type"] == "ollama"


def test_not_ollama_at_that_url(openai_server):
    url = openai_server.base_url.rsplit("/v1", 1)[0]
    available, reason = OllamaBackend({"base_url": url}).check_availability()
    assert not available and "not an Ollama server" in reason


def test_ollama_host_environment_variable(ollama_server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", ollama_server.url.removeprefix("http://"))
    backend = OllamaBackend({})
    assert backend.base_url == ollama_server.url
    assert backend.is_available()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", DEFAULT_BASE_URL),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":1234", "http://127.0.0.1:1234"),
        ("example.com:1234", "http://example.com:1234"),
        ("http://1.2.3.4", "http://1.2.3.4:80"),
        ("https://example.com/ollama/", "https://example.com:443/ollama"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("::1", "http://[::1]:11434"),
        ("[::1]:9000", "http://[::1]:9000"),
        (' "1.2.3.4" ', "http://1.2.3.4:11434"),
        ("example.com/path", "http://example.com:11434/path"),
    ],
)
def test_normalize_host_follows_ollama_clients(value, expected):
    assert normalize_host(value) == expected


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"backends\.ollama\.settings\.read_timeout"):
        OllamaBackend({"read_timeout": "long"})
    with pytest.raises(ConfigError, match="did you mean 'base_url'"):
        OllamaBackend({"baseurl": "http://x"})


def test_iterating_a_temporary_stream_yields_everything(ollama_server):
    """``for piece in backend.generate_stream(...)``: the stream object is dropped at once."""
    pieces = [
        p for p in make_backend(ollama_server).generate_stream("one two three", "smollm:135m")
    ]
    assert "".join(pieces) == "You said: one two three"


def test_credentials_in_the_url_are_sent_but_never_shown(ollama_server):
    host = ollama_server.url.removeprefix("http://")
    backend = OllamaBackend({"base_url": f"http://alice:hunter2-pass@{host}"})
    assert backend.base_url == ollama_server.url
    assert backend.generate("hi", "smollm:135m").text == "You said: hi"
    for text in (repr(backend), str(backend.get_backend_info()), str(backend.settings)):
        assert "hunter2" not in text
    down = OllamaBackend({"base_url": "http://alice:hunter2-pass@127.0.0.1:1"})
    available, reason = down.check_availability()
    assert not available and "hunter2" not in reason


def test_answers_reuse_one_keep_alive_connection(ollama_server):
    """Reading each body to its end hands the connection back to the pool: five answers
    cost one connection, not five (a TCP, or TLS, handshake per row of a batch)."""
    backend = make_backend(ollama_server)
    backend.generate("warm up", "smollm:135m")
    before = ollama_server.connections_opened
    for n in range(5):
        assert backend.generate(f"question {n}", "smollm:135m").text
    assert ollama_server.connections_opened == before


def test_a_late_cancel_does_not_cut_the_next_answer_on_the_same_connection(ollama_server):
    """A front end tidying up calls cancel() on an answer already read (the REST pump does);
    its connection is back in the pool carrying the next answer, which must not be cut."""
    backend = make_backend(ollama_server)
    first = backend.generate_stream("one", "smollm:135m")
    assert "".join(first)
    ollama_server.token_delay = 0.05
    second = backend.generate_stream("two", "smollm:135m")
    pieces = [next(iter(second))]
    first.cancel()
    pieces += list(second)
    assert second.response is not None and second.response.finish_reason == "stop"
    assert "".join(pieces) == "You said: two"
    assert ollama_server.connections_opened == 1
