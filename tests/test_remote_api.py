"""The SDK backends share one family base: the same fault gives the same error in both.

Each case runs the real ``openai`` and ``anthropic`` clients against their loopback
servers, so a rung of ``RemoteAPIBackend``'s error ladder is checked where it differed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localmind_jupyter.backends._remote_api import RemoteAPIBackend
from localmind_jupyter.backends.anthropic import AnthropicBackend
from localmind_jupyter.backends.openai import OpenAIBackend, VLLMBackend
from localmind_jupyter.errors import BackendUnavailable, GenerationError, LocalMindError
from tests.servers.anthropic_server import AnthropicTestServer
from tests.servers.openai_server import OpenAITestServer

KEY = "sk-family-secret-123456"


@pytest.fixture(autouse=True)
def _no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["openai", "anthropic"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[RemoteAPIBackend, object, str]]:
    """(backend, its loopback server, a model it serves) for each SDK backend."""
    if request.param == "openai":
        with OpenAITestServer(models=["gpt-test"], api_key=KEY) as srv:
            yield OpenAIBackend({"base_url": srv.base_url, "api_key": KEY}), srv, "gpt-test"
    else:
        with AnthropicTestServer(models=["claude-test"], api_key=KEY) as srv:
            yield AnthropicBackend({"base_url": srv.base_url, "api_key": KEY}), srv, "claude-test"


def test_the_sdk_backends_share_the_family_base():
    for cls in (OpenAIBackend, VLLMBackend, AnthropicBackend):
        assert issubclass(cls, RemoteAPIBackend)
        assert cls.capabilities.downloads is False


def test_a_refused_key_is_backend_unavailable_in_both(served):
    """HTTP 403: the key is refused (OpenAI's answer was a bare 'HTTP 403' GenerationError)."""
    backend, server, model = served
    server.fail_status = 403
    with pytest.raises(BackendUnavailable, match=r"refused this API key \(HTTP 403\)") as info:
        backend.generate("hi", model)
    assert KEY not in str(info.value)


def test_errors_name_the_server_and_keep_no_key(served):
    backend, server, model = served
    server.fail_status = 500
    with pytest.raises(GenerationError, match=r"answered HTTP 500") as info:
        backend.generate("hi", model)
    assert server.base_url.rstrip("/") in str(info.value) and KEY not in str(info.value)


def test_client_is_built_once_and_rebuilt_after_close(served):
    backend, _server, model = served
    first = backend.client
    assert backend.client is first
    backend.close()
    assert backend.generate("hi there", model).text.endswith("hi there")
    assert backend.client is not first


def test_a_server_that_cannot_list_offers_the_configured_models():
    with OpenAITestServer(models=["gpt-test"]) as srv:
        srv.models_status = 404
        backend = OpenAIBackend({"base_url": srv.base_url, "models": ["gpt-test"]})
        assert backend.check_availability() == (True, None)
        assert backend.list_models() == ["gpt-test"]
        assert backend.generate("ping", "gpt-test").text == "You said: ping"


def test_a_listing_failure_is_a_localmind_error_not_the_sdks():
    """No configured models: the failure is ours and says what answered (was openai's own)."""
    with OpenAITestServer(models=["gpt-test"]) as srv:
        srv.models_status = 500
        backend = OpenAIBackend({"base_url": srv.base_url})
        available, reason = backend.check_availability()
        assert not available and "HTTP 500 to /models" in reason
        with pytest.raises(LocalMindError, match="answered HTTP 500"):
            backend.list_models()


def test_threads_asking_at_once_share_one_client(served):
    from concurrent.futures import ThreadPoolExecutor

    backend, _server, _model = served
    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: backend.client, range(16)))
    assert all(client is clients[0] for client in clients)
