"""The Anthropic backend through the real ``anthropic`` client against a loopback server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

anthropic = pytest.importorskip("anthropic")

from localmind_jupyter.backends.anthropic import AnthropicBackend  # noqa: E402
from localmind_jupyter.errors import (  # noqa: E402
    BackendUnavailable,
    ConfigError,
    DownloadError,
    GenerationError,
    ModelNotFound,
    OptionError,
)
from tests.conftest import REPO, free_port  # noqa: E402
from tests.servers.anthropic_server import AnthropicTestServer  # noqa: E402

KEY = "sk-ant-test-secret-123456"
MODELS = ["claude-test", "claude-small"]


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's Anthropic key, base URL or SDK profile."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CUSTOM_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[AnthropicTestServer]:
    with AnthropicTestServer(models=MODELS, api_key=KEY) as srv:
        yield srv


def make_backend(server: AnthropicTestServer, **settings) -> AnthropicBackend:
    return AnthropicBackend({"base_url": server.base_url, "api_key": KEY, **settings})


def test_stream_yields_pieces_that_join_to_the_response(server):
    stream = make_backend(server).generate_stream("hello there friend", "claude-test")
    pieces = list(stream)
    assert len(pieces) >= 4
    response = stream.response
    assert response is not None
    assert "".join(pieces) == response.text == "You said: hello there friend"
    assert response.model == "claude-test"
    assert response.backend == "anthropic"
    assert response.finish_reason == "stop"
    assert response.prompt_tokens == 3
    assert response.completion_tokens == len(pieces)
    assert response.time_to_first_token is not None and response.time_to_first_token > 0
    assert response.duration >= response.time_to_first_token
    assert response.tokens_per_second and response.tokens_per_second > 0
    method, path, headers, body = server.requests[-1]
    assert (method, path) == ("POST", "/v1/messages")
    assert headers["anthropic-version"]
    assert body["stream"] is True


def test_generate_matches_stream(server):
    response = make_backend(server).generate("ping", "claude-test")
    assert response.text == "You said: ping"
    assert response.finish_reason == "stop"
    assert response.prompt_tokens == 1 and response.completion_tokens == 3


def test_server_answers_non_streamed_requests_too(server):
    client = anthropic.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0)
    message = client.messages.create(
        model="claude-test",
        max_tokens=2,
        messages=[{"role": "user", "content": "one two three"}],
    )
    assert message.content[0].text == "You said: "
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


def test_options_are_mapped_to_the_api(server):
    make_backend(server).generate(
        "question",
        "claude-test",
        system="be brief",
        messages=[
            {"role": "system", "content": "and kind"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ],
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n", "END"],
    )
    body = server.last_body
    assert body["system"] == "be brief\n\nand kind"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][-1]["content"] == "question"
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 50
    assert body["stop_sequences"] == ["\n\n", "END"]
    assert "seed" not in body and "stop" not in body


def test_max_tokens_defaults_from_the_setting(server):
    make_backend(server).generate("hi", "claude-test")
    assert server.last_body["max_tokens"] == 1024
    make_backend(server, max_tokens=77).generate("hi", "claude-test")
    assert server.last_body["max_tokens"] == 77


def test_max_tokens_gives_length_and_stop_sequences_cut(server):
    backend = make_backend(server)
    short = backend.generate("one two three four five", "claude-test", max_tokens=2)
    assert short.finish_reason == "length"
    assert short.text == "You said: "
    stopped = backend.generate("alpha beta gamma", "claude-test", stop="beta")
    assert stopped.finish_reason == "stop"
    assert stopped.text == "You said: alpha "


def test_options_anthropic_cannot_honour_fail_before_any_request(server):
    backend = make_backend(server)
    with pytest.raises(OptionError, match="does not support seed"):
        backend.generate("hi", "claude-test", seed=7)
    with pytest.raises(OptionError, match="between 0 and 1"):
        backend.generate("hi", "claude-test", temperature=1.5)
    with pytest.raises(OptionError, match="top_k"):
        backend.generate("hi", "claude-test", top_k=3)
    assert server.requests == []


def test_close_mid_stream_disconnects_and_keeps_partial(server):
    server.token_delay = 0.05
    stream = make_backend(server).generate_stream(" ".join(["word"] * 40), "claude-test")
    first = [next(stream), next(stream)]
    stream.close()
    assert server.disconnected.wait(3), "the server never saw the client leave"
    assert server.chunks_sent < 20
    assert stream.response is not None
    assert stream.response.finish_reason == "cancelled"
    assert stream.response.text == "".join(first)


def test_leaving_the_loop_stops_the_source(server):
    server.token_delay = 0.05
    backend = make_backend(server)
    for index, _piece in enumerate(backend.generate_stream(" ".join(["w"] * 40), "claude-test")):
        if index == 1:
            break
    assert server.disconnected.wait(3)
    assert server.chunks_sent < 20


def test_unknown_model_lists_what_is_served(server):
    with pytest.raises(ModelNotFound) as info:
        make_backend(server).generate("hi", "claude-nope")
    message = str(info.value)
    assert "claude-nope" in message
    assert "claude-test" in message and "claude-small" in message


def test_server_down_is_backend_unavailable():
    url = f"http://127.0.0.1:{free_port()}"
    backend = AnthropicBackend({"base_url": url, "api_key": KEY})
    available, reason = backend.check_availability()
    assert not available
    assert "connection refused" in reason and url in reason
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        backend.generate("hi", "claude-test")


def test_wrong_key_is_reported_without_the_key(server):
    wrong = "sk-ant-wrong-key-abcdefgh"
    backend = AnthropicBackend({"base_url": server.base_url, "api_key": wrong})
    available, reason = backend.check_availability()
    assert not available and "API key" in reason and "401" in reason
    with pytest.raises(BackendUnavailable) as info:
        backend.generate("hi", "claude-test")
    assert "ANTHROPIC_API_KEY" in str(info.value)
    for text in (
        str(info.value),
        repr(info.value),
        reason,
        repr(backend),
        repr(backend.settings),
        str(backend.get_backend_info()),
    ):
        assert wrong not in text


def test_no_key_says_how_to_set_it():
    backend = AnthropicBackend({})
    assert backend.base_url == "https://api.anthropic.com"
    available, reason = backend.check_availability()
    assert not available and "ANTHROPIC_API_KEY" in reason
    with pytest.raises(BackendUnavailable, match="ANTHROPIC_API_KEY"):
        backend.generate("hi", "claude-sonnet-4-6")
    assert backend.get_backend_info()["api_key_set"] is False


@pytest.mark.parametrize(
    ("status", "pattern"),
    [
        (429, r"rate limiting requests \(HTTP 429\).*wait and retry"),
        (529, r"overloaded \(HTTP 529\).*retry"),
        (500, r"HTTP 500: Internal server error"),
    ],
)
def test_http_errors_before_streaming(server, status, pattern):
    server.fail_status = status
    with pytest.raises(GenerationError, match=pattern) as info:
        make_backend(server).generate("hi", "claude-test")
    assert KEY not in str(info.value)


def test_bad_request_is_an_option_error_with_the_api_message(server):
    server.fail_status = 400
    with pytest.raises(OptionError, match="rejected the request: messages: "):
        make_backend(server).generate("hi", "claude-test")


def test_error_event_mid_stream_keeps_partial_text(server):
    server.error_after = 2
    stream = make_backend(server).generate_stream("a b c d e f", "claude-test")
    received: list[str] = []
    with pytest.raises(GenerationError, match=r"mid-answer \(overloaded_error\): Overloaded") as i:
        for piece in stream:
            received.append(piece)
    assert received == ["You ", "said: "]
    assert i.value.partial_text == "You said: "


def test_drop_mid_stream_keeps_partial_text(server):
    server.drop_after = 3
    stream = make_backend(server).generate_stream("a b c d e f g h", "claude-test")
    received: list[str] = []
    with pytest.raises(GenerationError, match="dropped") as info:
        for piece in stream:
            received.append(piece)
    assert len(received) == 3
    assert info.value.partial_text == "".join(received)


def test_nothing_to_download(server):
    with pytest.raises(DownloadError, match="nothing to download"):
        make_backend(server).download_model("claude-test")


def test_environment_key_goes_only_to_anthropic(server, monkeypatch):
    """ANTHROPIC_API_KEY is Anthropic's: ANTHROPIC_BASE_URL's server gets no key from it."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    backend = AnthropicBackend({})
    assert backend.base_url == server.base_url
    available, reason = backend.check_availability()
    assert not available and "HTTP 401" in reason and "settings.api_key" in reason
    assert backend.get_backend_info()["api_key_set"] is False
    assert server.credentials
    assert all(KEY not in str(sent) for _, _, sent in server.credentials)
    configured = AnthropicBackend({"api_key": KEY})
    assert configured.list_models() == MODELS
    assert configured.check_availability() == (True, None)
    assert configured.get_backend_info()["api_key_set"] is True
    assert KEY in str(server.credentials[-1][2])
    official = AnthropicBackend({"base_url": "https://api.anthropic.com"})
    assert official.get_backend_info()["api_key_set"] is True  # the vendor's own API


def test_a_server_of_your_own_needs_no_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with AnthropicTestServer(models=MODELS) as open_server:
        backend = AnthropicBackend({"base_url": open_server.base_url})
        assert backend.check_availability() == (True, None)
        assert backend.list_models() == MODELS
        assert backend.get_backend_info()["api_key_set"] is False
        assert all(KEY not in str(sent) for _, _, sent in open_server.credentials)


def test_models_from_the_catalog_when_the_api_fails(server):
    from localmind_jupyter.core.model_registry import load_catalog

    catalog = [entry.name for entry in load_catalog("anthropic")]
    assert catalog and all(name.startswith("claude-") for name in catalog)
    server.models_status = 404
    backend = make_backend(server)
    assert backend.list_models() == catalog
    assert backend.check_availability() == (True, None)  # reachable, key accepted
    assert AnthropicBackend({}).list_models() == catalog  # no key yet
    down = AnthropicBackend({"base_url": f"http://127.0.0.1:{free_port()}", "api_key": KEY})
    assert down.list_models() == catalog


def test_catalog_entries_are_remote_chat_models():
    from localmind_jupyter.core.model_registry import load_catalog

    for entry in load_catalog("anthropic"):
        assert entry.size is None
        assert {"chat", "remote"} <= set(entry.tags)
        assert entry.description and len(entry.description) < 120


def test_bad_settings():
    with pytest.raises(ConfigError, match="base_ur"):
        AnthropicBackend({"base_ur": "http://x"})
    with pytest.raises(ConfigError, match="max_tokens"):
        AnthropicBackend({"max_tokens": "lots"})


def test_iterating_a_temporary_stream_yields_everything(server):
    backend = make_backend(server)
    pieces = [p for p in backend.generate_stream("one two three", "claude-test")]
    assert "".join(pieces) == "You said: one two three"


def test_importing_the_backend_does_not_import_the_sdk():
    code = (
        "import sys, localmind_jupyter.backends.anthropic as m\n"
        "m.AnthropicBackend({'api_key': 'k'})\n"
        "assert 'anthropic' not in sys.modules, 'anthropic was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_server_checks_key_and_version_headers_and_speaks_error_bodies(server):
    import json
    import urllib.error
    import urllib.request

    def call(path: str, headers: dict[str, str], body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(server.base_url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, json.load(reply)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    good = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    status, listing = call("/v1/models", good)
    assert status == 200 and [m["id"] for m in listing["data"]] == MODELS
    status, body = call("/v1/models", {"anthropic-version": "2023-06-01"})
    assert status == 401 and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    status, body = call("/v1/models", {"x-api-key": KEY})
    assert status == 400 and "anthropic-version" in body["error"]["message"]
    message = {
        "model": "claude-test",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    }
    status, body = call(
        "/v1/messages", {**good, "content-type": "application/json"}, {**message, "seed": 1}
    )
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert "seed" in body["error"]["message"]


def test_server_runs_as_a_process():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.anthropic_server", "--lifetime", "20"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        client = anthropic.Anthropic(base_url=url, api_key="any", max_retries=0, timeout=5)
        assert [m.id for m in client.models.list()] == ["claude-test"]
    finally:
        process.terminate()
        process.wait(10)
