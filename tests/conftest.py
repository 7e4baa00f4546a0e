"""Shared fixtures: an isolated LocalMind home per test, and the loopback test servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# CI rules: a skip fails CI unless allowed with its reason; tests never rewrite tracked files.
pytest_plugins = ["tests._ci_policy"]

REPO = Path(__file__).resolve().parent.parent
# Offline by construction: the Hub is unreachable here and in CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The converted bundled model is kept for the whole run (and between runs of one checkout).
os.environ.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the developer's ~/.localmind or their API keys."""
    home = tmp_path / "localmind-home"
    home.mkdir()
    monkeypatch.setenv("LOCALMIND_HOME", str(home))
    for name in (
        "LOCALMIND_CONFIG",
        "OLLAMA_HOST",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def openai_server() -> Iterator:
    from tests.servers.openai_server import OpenAITestServer

    with OpenAITestServer(models=["gpt-test", "smol-chat"], api_key="sk-test-secret-123456") as srv:
        yield srv


@pytest.fixture
def ollama_server() -> Iterator:
    from tests.servers.ollama_server import OllamaTestServer

    with OllamaTestServer() as srv:
        yield srv


def free_port() -> int:
    """A port nothing listens on (bound then released), for 'server down' tests."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def kernel(isolated_home: Path, ollama_server) -> Iterator:
    """A kernel with the extension loaded, its default model on the Ollama test server."""
    import textwrap

    from tests.test_magic_kernel import Kernel

    (isolated_home / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            default_model: ollama:smollm:135m
            backends:
              ollama:
                settings: {{base_url: "{ollama_server.url}"}}
            """
        )
    )
    k = Kernel(isolated_home)
    try:
        k.run("%load_ext localmind_jupyter")
        yield k
    finally:
        k.stop()
