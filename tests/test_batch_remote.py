"""A batch on the OpenAI-compatible and Anthropic backends (their official SDKs against the
loopback servers): order and errors per row, and ``stream.cancel()`` from another thread
shutting a slow answer's connection at once, which is how a batch's Cancel reaches them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import localmind_jupyter as lm
from localmind_jupyter.backends.base import BaseBackend
from localmind_jupyter.core.retry import RetryPolicy
from localmind_jupyter.session import reset_session

KEY = "sk-test-secret-123456"
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


@pytest.fixture
def anthropic_server() -> Iterator:
    pytest.importorskip("anthropic")
    from tests.servers.anthropic_server import AnthropicTestServer

    with AnthropicTestServer(api_key=KEY) as srv:
        yield srv


def _configure(home: Path, kind: str, url: str, model: str) -> None:
    (home / "config.yaml").write_text(
        f"default_model: {kind}:{model}\nbackends:\n  {kind}:\n"
        f'    settings: {{base_url: "{url}", api_key: "{KEY}"}}\n'
    )
    reset_session()


@pytest.fixture
def openai_batch(isolated_home: Path, openai_server) -> Iterator:
    pytest.importorskip("openai")
    _configure(isolated_home, "openai", openai_server.base_url, "gpt-test")
    yield openai_server
    reset_session()


def test_an_openai_batch_keeps_order_and_its_failed_row(openai_batch):
    openai_batch.token_delay = 0.01
    openai_batch.fault_for_prompt("row 2", "status 400", exact=True)
    prompts = [f"row {i}" for i in range(10)]
    result = lm.batch(prompts, progress=False, retry=FAST)
    assert [i for i, r in enumerate(result) if r.finish_reason == "error"] == [2]
    assert all(p in t for p, t in zip(prompts, result.texts, strict=True) if p != "row 2")
    assert "rejected the request" in result.errors[2]
    assert "sk-test-secret" not in repr(result) + str(result.errors), "the key leaked"


def _cancel_a_slow_answer(backend: BaseBackend, model: str) -> None:
    stream = backend.generate_stream("tell me a long story", model)
    pieces = iter(stream)
    first = next(p for p in pieces if p)
    threading.Timer(0.3, stream.cancel).start()
    start = time.perf_counter()
    rest = list(pieces)
    took = time.perf_counter() - start
    assert took < 1.5, f"the slow answer went on for {took:.1f} s after the cancel"
    response = stream.response
    assert response is not None and response.finish_reason == "cancelled"
    assert response.text == first + "".join(rest) and response.error is None


def test_openai_stream_cancel_from_another_thread_stops_at_once(openai_batch):
    from localmind_jupyter.session import get_session

    openai_batch.token_delay = 3.0  # seconds between pieces
    backend, model = get_session().resolve(None, None)
    _cancel_a_slow_answer(backend, model)


def test_anthropic_stream_cancel_from_another_thread_stops_at_once(
    isolated_home: Path, anthropic_server
):
    from localmind_jupyter.session import get_session

    _configure(isolated_home, "anthropic", anthropic_server.base_url, anthropic_server.models[0])
    anthropic_server.token_delay = 3.0
    backend, name = get_session().resolve(None, None)
    _cancel_a_slow_answer(backend, name)
    reset_session()
