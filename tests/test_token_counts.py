"""Without a token count from the server, the streamed pieces are counted, marked approximate.

llama.cpp's server ignores ``stream_options.include_usage``; a stopped stream gets no
count from any server. The footer, ``_localmind`` and the REST API then still show tokens
and tokens/s, with ``tokens_approximate`` set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localmind_jupyter.backends.anthropic import AnthropicBackend
from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.backends.openai import OpenAIBackend
from localmind_jupyter.magics.magic import _stats_line
from tests.servers.anthropic_server import AnthropicTestServer

KEY = "sk-test-secret-123456"  # the openai_server fixture's key


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicTestServer]:
    with AnthropicTestServer(api_key=KEY) as server:
        yield server


def test_a_server_without_usage_gets_counted_pieces(openai_server):
    openai_server.include_usage_ignored = True  # as llama.cpp's server
    openai_server.token_delay = 0.01
    backend = OpenAIBackend({"base_url": openai_server.base_url, "api_key": KEY})
    stream = backend.generate_stream("one two three four five", "gpt-test")
    pieces = list(stream)
    response = stream.response
    assert response.completion_tokens == len(pieces) == 7
    assert response.tokens_approximate is True
    assert response.tokens_per_second and response.tokens_per_second > 0
    assert response.to_dict()["tokens_approximate"] is True
    footer = _stats_line(response, stopped=False)
    assert f"· ~7 tokens · first token {response.time_to_first_token:.2f} s" in footer
    assert f"· ~{response.tokens_per_second:.1f} tokens/s" in footer


def test_a_count_from_the_server_is_exact(openai_server):
    backend = OpenAIBackend({"base_url": openai_server.base_url, "api_key": KEY})
    response = backend.generate("one two three", "gpt-test")
    assert response.completion_tokens == 5 and response.tokens_approximate is False
    assert "· 5 tokens ·" in _stats_line(response, stopped=False)
    assert "~" not in _stats_line(response, stopped=False)


@pytest.mark.parametrize("kind", ["ollama", "openai", "anthropic"])
def test_a_stopped_stream_counts_what_arrived(kind, ollama_server, openai_server, anthropic_server):
    server, backend, model = {
        "ollama": (ollama_server, OllamaBackend({"base_url": ollama_server.url}), "smollm:135m"),
        "openai": (
            openai_server,
            OpenAIBackend({"base_url": openai_server.base_url, "api_key": KEY}),
            "gpt-test",
        ),
        "anthropic": (
            anthropic_server,
            AnthropicBackend({"base_url": anthropic_server.base_url, "api_key": KEY}),
            "claude-test",
        ),
    }[kind]
    server.token_delay = 0.02
    stream = backend.generate_stream(" ".join(["word"] * 40), model)
    got = [next(stream), next(stream), next(stream)]
    stream.close()
    response = stream.response
    assert response.finish_reason == "cancelled" and response.text == "".join(got)
    assert response.completion_tokens == 3 and response.tokens_approximate is True
    assert response.tokens_per_second and response.tokens_per_second > 0
    assert "· ~3 tokens ·" in _stats_line(response, stopped=True)
