"""A keep-alive connection the server closed costs one quiet resend, never a false "is it down?".

Each loopback server is told to cut, unanswered, the next request on a connection that
carried an error answer (FIN or RST), as a server that closed it looks to a client that
reuses it. The official clients (httpx for Ollama, the SDKs for OpenAI and Anthropic) are
used as they are.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from localmind_jupyter.backends.anthropic import AnthropicBackend
from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.backends.openai import OpenAIBackend
from localmind_jupyter.errors import BackendUnavailable, GenerationError
from tests.conftest import free_port
from tests.servers.anthropic_server import AnthropicTestServer
from tests.servers.ollama_server import OllamaTestServer
from tests.servers.openai_server import OpenAITestServer

KEY = "sk-test-secret-123456"


def _ollama() -> tuple[OllamaTestServer, OllamaBackend, str, str]:
    server = OllamaTestServer().start()
    return server, OllamaBackend({"base_url": server.url}), "smollm:135m", "/api/chat"


def _openai() -> tuple[OpenAITestServer, OpenAIBackend, str, str]:
    server = OpenAITestServer(api_key=KEY).start()
    backend = OpenAIBackend({"base_url": server.base_url, "api_key": KEY})
    return server, backend, "gpt-test", "/v1/chat/completions"


def _anthropic() -> tuple[AnthropicTestServer, AnthropicBackend, str, str]:
    server = AnthropicTestServer(api_key=KEY).start()
    backend = AnthropicBackend({"base_url": server.base_url, "api_key": KEY})
    return server, backend, "claude-test", "/v1/messages"


@pytest.fixture(params=[_ollama, _openai, _anthropic], ids=["ollama", "openai", "anthropic"])
def peer(request: pytest.FixtureRequest) -> Iterator[tuple]:
    server, backend, model, path = request.param()
    try:
        yield server, backend, model, path
    finally:
        backend.close()
        server.stop()


def _posts(server, path: str) -> int:
    return sum(1 for r in server.requests if r[1] == path)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_the_cell_after_an_error_answers(peer, how):
    server, backend, model, path = peer
    server.drop_after_error = how
    server.fail_status = 500
    with pytest.raises(GenerationError, match="500"):
        backend.generate("hi", model)
    server.fail_status = None
    response = backend.generate("hello again", model)
    assert response.text == "You said: hello again"
    # The error, the request cut unanswered on the reused connection, the one resend.
    assert _posts(server, path) == 3


def test_a_stream_that_fails_mid_answer_is_not_sent_again(peer):
    server, backend, model, path = peer
    backend.generate("warm the pool", model)  # the next request reuses the connection
    server.drop_after = 2
    with pytest.raises(GenerationError, match="mid-answer") as info:
        backend.generate("a b c d e f", model)
    assert info.value.partial_text
    assert _posts(server, path) == 2, "the generation was started twice"


class _HangUpServer:
    """Accepts every connection, reads the request, closes without a word; counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.recv(65536)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("kind", ["ollama", "openai", "anthropic"])
def test_a_server_that_hangs_up_on_a_new_connection_is_reported_not_retried(kind):
    server = _HangUpServer()
    try:
        backend = {
            "ollama": lambda: OllamaBackend({"base_url": server.url}),
            "openai": lambda: OpenAIBackend({"base_url": server.url + "/v1", "api_key": KEY}),
            "anthropic": lambda: AnthropicBackend({"base_url": server.url, "api_key": KEY}),
        }[kind]()
        with pytest.raises(BackendUnavailable):
            backend.generate("hi", "m")
        time.sleep(0.05)
        assert server.accepted == 1
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["ollama", "openai", "anthropic"])
def test_a_server_that_is_down_still_says_so_at_once(kind):
    url = f"http://127.0.0.1:{free_port()}"
    backend = {
        "ollama": lambda: OllamaBackend({"base_url": url}),
        "openai": lambda: OpenAIBackend({"base_url": url + "/v1", "api_key": KEY}),
        "anthropic": lambda: AnthropicBackend({"base_url": url, "api_key": KEY}),
    }[kind]()
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable, match=r"running|reach"):
        backend.generate("hi", "m")
    assert time.perf_counter() - started < 1.0
