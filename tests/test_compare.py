"""``localmind_jupyter.compare``: several models, one prompt, at once, against the Ollama and
OpenAI test servers (their official clients): order, overlap, per-model errors, bad input,
cancel, the answer log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import localmind_jupyter as lm
from localmind_jupyter.core.compare import CompareEvent, resolve_targets, run_compare
from localmind_jupyter.errors import OptionError
from localmind_jupyter.session import get_session, reset_session

KEY = "sk-test-secret-123456"
OLLAMA = "ollama:smollm:135m"
OPENAI = "openai:gpt-test"


def configure(home: Path, ollama_url: str, openai_url: str) -> None:
    (home / "config.yaml").write_text(
        f"default_model: {OLLAMA}\nbackends:\n"
        f'  ollama:\n    settings: {{base_url: "{ollama_url}"}}\n'
        f'  openai:\n    settings: {{base_url: "{openai_url}", api_key: "{KEY}"}}\n'
    )
    reset_session()


@pytest.fixture
def servers(isolated_home: Path, ollama_server, openai_server) -> Iterator:
    pytest.importorskip("openai")
    configure(isolated_home, ollama_server.url, openai_server.base_url)
    yield ollama_server, openai_server
    reset_session()


def overlap(a, b) -> float:
    """Seconds two served requests were in flight together."""
    return min(a.end, b.end) - max(a.start, b.start)


def chat_timing(server, path: str):
    return [t for t in server.timings if t.path.endswith(path)][-1]


def test_two_servers_answer_at_once_in_the_order_given(servers):
    ollama, openai = servers
    lm.compare("warm up", [OPENAI, OLLAMA])  # the first request imports each client
    ollama.reply_pieces = [f"o{i} " for i in range(10)]
    ollama.token_delay = openai.token_delay = 0.05
    start = time.monotonic()
    answers = lm.compare("Say hi to me and to all of you", [OPENAI, OLLAMA], temperature=0, seed=7)
    took = time.monotonic() - start
    assert [a.backend for a in answers] == ["openai", "ollama"]
    assert answers[1].text == "".join(ollama.reply_pieces)
    assert answers[0].text == "You said: Say hi to me and to all of you"
    assert all(a.finish_reason == "stop" and a.error is None for a in answers)
    shared = overlap(chat_timing(ollama, "/api/chat"), chat_timing(openai, "/chat/completions"))
    assert shared > 0.4, f"the requests overlapped only {shared:.2f} s (took {took:.2f} s)"
    # The same options reached both servers.
    assert ollama.requests[-1][2]["options"]["seed"] == 7
    assert openai.requests[-1][3]["seed"] == 7


def test_a_failing_model_is_its_own_error_and_the_others_complete(servers):
    _, openai = servers
    openai.fault_for_prompt("boom", "drop mid-stream", after=2)
    answers = lm.compare("boom now", [OLLAMA, OPENAI, "ollama:ghost:1b", "nope:x"])
    assert answers[0].finish_reason == "stop" and "boom now" in answers[0].text
    assert [a.finish_reason for a in answers[1:]] == ["error", "error", "error"]
    assert answers[1].text, "the partial text of the dropped answer was lost"
    assert "not installed" in (answers[2].error or "")
    assert "nope" in (answers[3].error or "")
    assert all(KEY not in (a.error or "") for a in answers)


def test_server_down_is_one_column_error(isolated_home, ollama_server):
    from tests.conftest import free_port

    pytest.importorskip("openai")
    configure(isolated_home, ollama_server.url, f"http://127.0.0.1:{free_port()}/v1")
    answers = lm.compare("hi", [OLLAMA, OPENAI])
    assert answers[0].finish_reason == "stop"
    assert answers[1].finish_reason == "error" and answers[1].error
    reset_session()


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([], "models is empty"),
        ("ollama:smollm:135m", "models must be a list"),
        ([OLLAMA, OLLAMA], "named twice"),
        ([OLLAMA, 3], "must be a 'backend:model' string"),
        ([OLLAMA, "smollm:135m"], "named twice"),  # the same model, written two ways
    ],
)
def test_bad_input_raises_before_anything_is_sent(servers, models, message):
    ollama, _ = servers
    with pytest.raises(OptionError, match=message):
        lm.compare("hi", models)
    assert not [r for r in ollama.requests if r[1] == "/api/chat"]


def test_a_bad_option_raises_before_anything_is_sent(servers):
    ollama, openai = servers
    with pytest.raises(OptionError):
        lm.compare("hi", [OLLAMA, OPENAI], temperature=9)
    with pytest.raises(OptionError):
        lm.compare("hi", [OLLAMA, OPENAI], temprature=0.5)
    with pytest.raises(OptionError, match="prompt"):
        lm.compare("", [OLLAMA, OPENAI])
    assert not [r for r in ollama.requests if r[1] == "/api/chat"]
    assert not [r for r in openai.requests if "chat" in r[1]]


def test_cancel_stops_every_stream_and_keeps_the_partial_answers(servers):
    ollama, openai = servers
    ollama.reply_pieces = [f"o{i} " for i in range(200)]
    ollama.token_delay = openai.token_delay = 0.05
    cancel = threading.Event()
    seen: dict[int, int] = {}

    def on_event(event: CompareEvent) -> None:
        if event.kind == "text":
            seen[event.column] = seen.get(event.column, 0) + 1
            if min(seen.get(0, 0), seen.get(1, 0)) >= 3:
                cancel.set()

    session = get_session()
    targets = resolve_targets([OLLAMA, OPENAI], lambda s: session.resolve(s, None))
    start = time.monotonic()
    answers = run_compare(
        "tell me a long story " * 20, targets, {}, on_event=on_event, cancel=cancel
    )
    assert time.monotonic() - start < 5
    assert [a.finish_reason for a in answers] == ["cancelled", "cancelled"]
    assert answers[0].text.startswith("o0 o1 o2 ")
    assert answers[1].text
    assert all(a.error is None for a in answers)
    # Both servers see their client leave (at their next write) and stop sending.
    assert ollama.disconnected.wait(2) and openai.disconnected.wait(2)
    assert ollama.chunks_sent < 50


def test_answers_are_logged_as_compare(servers):
    lm.compare("log me", [OLLAMA, OPENAI])
    entries = lm.log_entries(search="log me")
    rows = entries.to_dict("records") if hasattr(entries, "to_dict") else entries
    assert sorted(r["backend"] for r in rows) == ["ollama", "openai"]
    assert {r["source"] for r in rows} == {"compare"}


def test_schema_and_system_reach_every_model(servers):
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    ollama, openai = servers
    ollama.reply_pieces = ['{"name": "Paris"}']
    openai.json_reply = '{"name": "Lyon"}'
    answers = lm.compare("A city?", [OLLAMA, OPENAI], schema=City, system="be brief")
    assert [a.parsed for a in answers] == [City(name="Paris"), City(name="Lyon")]
    assert ollama.requests[-1][2]["messages"][0] == {"role": "system", "content": "be brief"}
    assert openai.requests[-1][3]["messages"][0]["content"] == "be brief"


def test_an_option_one_backend_refuses_is_that_models_error(servers):
    """Thinking on a model that cannot think, a backend option another backend lacks: that
    column's error, sent nowhere; the other model answers."""
    answers = lm.compare("hi", [OPENAI, OLLAMA], think=True)
    assert [a.finish_reason for a in answers] == ["stop", "error"]
    assert "does not support thinking" in (answers[1].error or "")
    answers = lm.compare("hi", [OPENAI, OLLAMA], options={"num_ctx": 512})
    assert [a.finish_reason for a in answers] == ["error", "stop"]
    assert "unknown backend option(s) num_ctx" in (answers[0].error or "")
