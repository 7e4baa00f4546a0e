"""An Ollama-API shim (oai2ollama, vollama) is named as such, with the configuration that works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.backends.openai import OpenAIBackend
from localmind_jupyter.errors import BackendUnavailable, DownloadError
from tests.servers.ollama_shim import OllamaShimServer

KEY = "sk-test-secret-123456"  # the openai_server fixture's key


@pytest.fixture
def shim(openai_server) -> Iterator[OllamaShimServer]:
    with OllamaShimServer(openai_server.base_url) as server:
        yield server


def test_availability_says_it_is_a_shim_and_how_to_use_it(shim):
    available, reason = OllamaBackend({"base_url": shim.url}).check_availability()
    assert not available
    assert reason == (
        f"the server at {shim.url} speaks only part of the Ollama API (no /api/chat) — it looks "
        f"like an OpenAI-compatible shim; use `type: openai` with `base_url: {shim.url}/v1`"
    )


def test_generate_and_pull_say_the_same_instead_of_a_bare_404(shim):
    backend = OllamaBackend({"base_url": shim.url})
    assert backend.list_models() == ["gpt-test"]  # what the shim does implement still works
    with pytest.raises(BackendUnavailable) as info:
        backend.generate("hi", "gpt-test")
    message = str(info.value)
    assert "no /api/chat" in message and f"`base_url: {shim.url}/v1`" in message
    assert "404" not in message.replace(shim.url, "URL")  # the free port may hold "404"
    with pytest.raises(BackendUnavailable, match="no /api/chat"):
        backend.load_model("gpt-test")
    with pytest.raises(DownloadError, match="no /api/pull"):
        backend.download_model("gpt-test")


def test_the_suggested_configuration_answers(shim):
    backend = OpenAIBackend({"base_url": f"{shim.url}/v1", "api_key": KEY})
    assert backend.check_availability() == (True, None)
    stream = backend.generate_stream("hello shim", "gpt-test")
    assert "".join(stream) == "You said: hello shim"
    assert stream.response.finish_reason == "stop"


def test_ollama_itself_is_still_available(ollama_server):
    backend = OllamaBackend({"base_url": ollama_server.url})
    assert backend.check_availability() == (True, None)
    assert ("HEAD", "/", None) in ollama_server.requests
