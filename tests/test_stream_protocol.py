"""The base's streaming protocol, seen from outside: what a server and a reader observe.

A stream made and never read still hangs up on the server when closed or dropped, so
Ollama stops generating; the loopback servers tell when the client disconnected.
"""

from __future__ import annotations

import gc
import threading

import pytest

from localmind_jupyter.backends.anthropic import AnthropicBackend
from localmind_jupyter.backends.base import BaseBackend, Started, Thinking, Usage
from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.backends.openai import OpenAIBackend
from localmind_jupyter.errors import GenerationError, OptionError

LONG = " ".join(f"w{i}" for i in range(200))


def _ollama(server):
    server.token_delay = 0.02
    return OllamaBackend({"base_url": server.url}).generate_stream(LONG, "smollm:135m")


def _openai(server):
    server.token_delay = 0.02
    server.reply_pieces = [f"w{i} " for i in range(200)]
    backend = OpenAIBackend({"base_url": server.base_url, "api_key": "sk-test-secret-123456"})
    return backend.generate_stream(LONG, "gpt-test")


def _anthropic(server):
    server.token_delay = 0.02
    server.reply_pieces = [f"w{i} " for i in range(200)]
    backend = AnthropicBackend({"base_url": server.base_url, "api_key": "sk-ant-test-key-123"})
    return backend.generate_stream(LONG, "claude-test")


@pytest.fixture
def anthropic_server():
    from tests.servers.anthropic_server import AnthropicTestServer

    with AnthropicTestServer(models=["claude-test"], api_key="sk-ant-test-key-123") as srv:
        yield srv


HTTP = pytest.mark.parametrize(
    "make", [_ollama, _openai, _anthropic], ids=["ollama", "openai", "anthropic"]
)


@HTTP
def test_closing_an_unread_stream_hangs_up(make, request):
    server = request.getfixturevalue(make.__name__.lstrip("_") + "_server")
    stream = make(server)
    stream.close()
    assert server.disconnected.wait(1), "the server kept generating for a closed stream"
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
    assert stream.response.text == ""


@HTTP
def test_dropping_an_unread_stream_hangs_up(make, request):
    server = request.getfixturevalue(make.__name__.lstrip("_") + "_server")
    gc.disable()  # the reference count alone must release it, not the cyclic collector
    try:
        stream = make(server)
        del stream
        assert server.disconnected.wait(1), "the server kept generating for a dropped stream"
    finally:
        gc.enable()


class _Engine(BaseBackend):
    """A backend written on the protocol: the base keeps every book."""

    type_name = "engine-test"
    stops_on_strings = False

    def setup(self) -> None:
        self.released = threading.Event()

    def list_models(self) -> list[str]:
        return ["m"]

    def deltas(self, request):
        if request.model != "m":
            raise OptionError(f"no model {request.model}")
        usage = Usage(prompt_tokens=3)
        try:
            yield Started()
            yield Thinking("hmm")
            yield usage
            for word in request.prompt.split():
                usage.completion_tokens = (usage.completion_tokens or 0) + 1
                if word == "boom":
                    raise RuntimeError("engine fell over")
                yield word + " "
        finally:
            self.released.set()


def test_set_up_errors_raise_from_generate_stream():
    with pytest.raises(OptionError, match="no model x"):
        _Engine().generate_stream("a b", "x")
    with pytest.raises(OptionError, match="temperature must be between 0 and 2, got 3"):
        _Engine().generate_stream("a b", "m", temperature=3)


def test_the_base_keeps_text_thinking_usage_and_timing():
    engine = _Engine()
    stream = engine.generate_stream("one two three", "m")
    assert list(stream) == ["one ", "two ", "three "]
    r = stream.response
    assert (r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens) == (
        "one two three ",
        "stop",
        3,
        3,
    )
    assert stream.thinking == "hmm"
    assert r.time_to_first_token is not None and r.duration >= r.time_to_first_token
    assert not r.tokens_approximate
    assert engine.released.is_set()


def test_a_failure_mid_answer_keeps_the_partial_text():
    stream = _Engine().generate_stream("one two boom three", "m")
    with pytest.raises(GenerationError, match="engine fell over") as info:
        list(stream)
    assert info.value.partial_text == "one two "


def test_the_base_cuts_stop_strings_and_stops_the_engine():
    engine = _Engine()
    stream = engine.generate_stream("one two three four", "m", stop=["o th"])
    assert "".join(stream) == "one tw"
    assert engine.released.is_set()
    assert (stream.response.finish_reason, stream.response.completion_tokens) == ("stop", 3)


def test_closing_mid_answer_is_cancelled_with_the_counts_so_far():
    engine = _Engine()
    with engine.generate_stream("one two three", "m") as stream:
        assert next(stream) == "one "
    assert engine.released.is_set()
    r = stream.response
    assert (r.finish_reason, r.text, r.prompt_tokens, r.completion_tokens) == (
        "cancelled",
        "one ",
        3,
        1,
    )


def test_generate_is_the_drained_stream():
    r = _Engine().generate("a b", "m")
    assert (r.text, r.completion_tokens, r.backend) == ("a b ", 2, "engine-test")
