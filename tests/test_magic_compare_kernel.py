"""``%%localmind MODEL_A MODEL_B`` in a real kernel, against the Ollama and OpenAI test
servers (their official clients): columns streaming side by side, overlapping requests,
one failing model, an interrupt, ``-o``, the table, untrusted text in every state."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_magic_kernel import Kernel, of_type

pytest.importorskip("jupyter_client")
pytest.importorskip("openai")

KEY = "sk-test-secret-123456"
OLLAMA = "ollama:smollm:135m"
OPENAI = "openai:gpt-test"
PAYLOAD = "<img src=x onerror=alert(1)> <script>alert(2)</script> "


@pytest.fixture
def kernel2(isolated_home: Path, ollama_server, openai_server) -> Iterator[Kernel]:
    """A kernel whose config names both test servers."""
    (isolated_home / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            default_model: {OLLAMA}
            backends:
              ollama:
                settings: {{base_url: "{ollama_server.url}"}}
              openai:
                settings: {{base_url: "{openai_server.base_url}", api_key: "{KEY}"}}
            """
        )
    )
    k = Kernel(isolated_home)
    try:
        k.run("%load_ext localmind_jupyter")
        yield k
    finally:
        k.stop()


def view_messages(messages: list[dict]) -> list[dict]:
    """The comparison view's display and its updates (the first display_id shown)."""
    displays = of_type(messages, "display_data", "update_display_data")
    ids = [m["content"].get("transient", {}).get("display_id") for m in displays]
    first = next(i for i in ids if i)
    return [m for m, i in zip(displays, ids, strict=True) if i == first]


def column_texts(plain: str, labels: list[str]) -> list[str]:
    """Each column's text, out of the view's ``text/plain`` (a header line per column)."""
    texts = []
    for index, label in enumerate(labels):
        start = plain.index(f"── {label}")
        start = plain.index("\n", start) + 1
        end = plain.find(f"── {labels[index + 1]}", start) if index + 1 < len(labels) else -1
        texts.append(plain[start:end] if end != -1 else plain[start:])
    return texts


def growth(updates: list[dict], labels: list[str]) -> list[int]:
    """For each column, in how many updates its text grew."""
    grew = [0] * len(labels)
    before = [""] * len(labels)
    for message in updates:
        now = column_texts(message["content"]["data"]["text/plain"], labels)
        for i, text in enumerate(now):
            if len(text) > len(before[i]):
                grew[i] += 1
        before = now
    return grew


def printed(messages: list[dict]) -> str:
    """What the cell printed, and the traceback of an error."""
    text = "".join(m["content"]["text"] for m in of_type(messages, "stream"))
    return text + "".join("\n".join(m["content"]["traceback"]) for m in of_type(messages, "error"))


def value_of(kernel: Kernel, expression: str) -> Any:
    out = kernel.run(f"import json as _j; print(_j.dumps({expression}, default=str))")
    assert not of_type(out, "error"), printed(out)
    return json.loads(printed(out))


def warm(kernel: Kernel) -> None:
    """The first request of each client imports it: done once, so timings are the answers'."""
    kernel.run(f"%%localmind {OLLAMA} {OPENAI} --no-history\nwarm up")


def test_two_models_stream_side_by_side_and_overlap(kernel2, ollama_server, openai_server):
    warm(kernel2)
    ollama_server.reply_pieces = [f"o{i} " for i in range(20)]
    openai_server.reply_pieces = [f"a{i} " for i in range(20)]
    ollama_server.token_delay = openai_server.token_delay = 0.05
    messages = kernel2.run(f"%%localmind {OLLAMA} {OPENAI} -o answers\nhello")
    assert not of_type(messages, "error"), printed(messages)
    view = view_messages(messages)
    updates = [m for m in view if m["msg_type"] == "update_display_data"]
    grew = growth(updates, [OLLAMA, OPENAI])
    assert min(grew) >= 4, f"a column did not stream: grew in {grew} updates"
    final = updates[-1]["content"]
    texts = column_texts(final["data"]["text/plain"], [OLLAMA, OPENAI])
    assert "o0 o1" in texts[0] and "o19" in texts[0]
    assert "a0 a1" in texts[1] and "a19" in texts[1]
    html = final["data"]["text/html"]
    assert "grid-template-columns:repeat(auto-fit,minmax(min(22em,100%),1fr))" in html
    assert "var(--jp-border-color2)" in html and "smollm:135m" in html and "gpt-test" in html
    # The servers served the two requests at the same time.
    chat_o = [t for t in ollama_server.timings if t.path == "/api/chat"][-1]
    chat_a = [t for t in openai_server.timings if t.path.endswith("/chat/completions")][-1]
    shared = min(chat_o.end, chat_a.end) - max(chat_o.start, chat_a.start)
    assert shared > 0.7, f"the requests overlapped only {shared:.2f} s"
    # The metadata names each model, its options and its stats.
    meta = final["metadata"]["localmind"]
    assert [m["backend"] for m in meta["models"]] == ["ollama", "openai"]
    assert [m["model"] for m in meta["models"]] == ["smollm:135m", "gpt-test"]
    assert all(m["stats"]["finish_reason"] == "stop" for m in meta["models"])
    assert meta["models"][0]["stats"]["completion_tokens"] == 20
    # -o: a dict from spec to text.
    assert value_of(kernel2, "answers") == {
        OLLAMA: "".join(ollama_server.reply_pieces),
        OPENAI: "".join(openai_server.reply_pieces),
    }
    # The table: one row per model, after the view.
    tables = [
        m["content"]["data"]
        for m in of_type(messages, "display_data")
        if "<table>" in m["content"]["data"].get("text/html", "")
    ]
    assert len(tables) == 1
    assert tables[0]["text/html"].count("<tr>") == 3  # the header and two models
    assert "first token" in tables[0]["text/plain"] and "tokens/s" in tables[0]["text/plain"]


def test_one_failing_model_leaves_the_other_complete(kernel2, ollama_server, openai_server):
    openai_server.fault_for_prompt("hello", "in-band error", after=2)
    ollama_server.reply_pieces = [f"o{i} " for i in range(8)]
    messages = kernel2.run(f"%%localmind {OLLAMA} {OPENAI} ollama:ghost:1b -o out\nhello")
    assert not of_type(messages, "error"), printed(messages)
    final = view_messages(messages)[-1]["content"]
    labels = [OLLAMA, OPENAI, "ollama:ghost:1b"]
    texts = column_texts(final["data"]["text/plain"], labels)
    assert texts[0].startswith("o0 o1 o2 o3 o4 o5 o6 o7")
    assert "⚠" in texts[1] and "⚠" in texts[2] and "not installed" in texts[2]
    meta = final["metadata"]["localmind"]["models"]
    assert [m["stats"]["finish_reason"] for m in meta] == ["stop", "error", "error"]
    assert meta[1]["error"] and meta[2]["error"]
    assert KEY not in json.dumps(final)
    out = value_of(kernel2, "out")
    assert out[OLLAMA] == "".join(ollama_server.reply_pieces)


def test_an_interrupt_stops_both_sources_and_keeps_both_partials(
    kernel2, ollama_server, openai_server
):
    warm(kernel2)
    ollama_server.reply_pieces = [f"o{i} " for i in range(400)]
    openai_server.reply_pieces = [f"a{i} " for i in range(400)]
    ollama_server.token_delay = openai_server.token_delay = 0.05
    interrupted: list[float] = []

    def interrupt(msg: dict) -> None:
        if msg["msg_type"] == "update_display_data" and not interrupted:
            plain = msg["content"]["data"].get("text/plain", "")
            texts = column_texts(plain, [OLLAMA, OPENAI])
            if all(t.count(" ") >= 5 for t in texts):
                interrupted.append(time.monotonic())
                kernel2.manager.interrupt_kernel()

    gone: dict[str, float] = {}

    def watch(name: str, server: Any) -> None:
        if server.disconnected.wait(30):
            gone[name] = time.monotonic()

    watchers = [
        threading.Thread(target=watch, args=(n, s), daemon=True)
        for n, s in (("ollama", ollama_server), ("openai", openai_server))
    ]
    for w in watchers:
        w.start()
    messages = kernel2.run(f"%%localmind {OLLAMA} {OPENAI} -o partial\ngo", on_message=interrupt)
    for w in watchers:
        w.join(10)
    assert interrupted, "never saw both columns stream"
    assert set(gone) == {"ollama", "openai"}, "a server never saw its client leave"
    assert all(t - interrupted[0] < 1.0 for t in gone.values()), "a source kept generating"
    assert not of_type(messages, "error"), "the interrupt became a traceback"
    final = view_messages(messages)[-1]["content"]
    meta = final["metadata"]["localmind"]
    assert meta["stopped"] is True
    assert [m["stats"]["finish_reason"] for m in meta["models"]] == ["cancelled", "cancelled"]
    texts = column_texts(final["data"]["text/plain"], [OLLAMA, OPENAI])
    assert texts[0].startswith("o0 o1 o2 o3 o4 ") and texts[1].startswith("a0 a1 a2 a3 a4 ")
    notes = [m["content"]["data"]["text/plain"] for m in of_type(messages, "display_data")]
    assert any("stopped" in n for n in notes)
    partial = value_of(kernel2, "partial")
    assert partial[OLLAMA].startswith("o0 o1 o2 o3 o4") and partial[OPENAI].startswith("a0 a1")


def test_untrusted_text_is_shown_as_text_in_every_state(kernel2, ollama_server, openai_server):
    ollama_server.reply_pieces = [PAYLOAD] * 6
    openai_server.reply_pieces = [PAYLOAD] * 3
    ollama_server.token_delay = openai_server.token_delay = 0.05
    openai_server.fault_for_prompt("show", "in-band error", after=2)
    messages = kernel2.run(f"%%localmind {OLLAMA} {OPENAI} ollama:{PAYLOAD.split()[0]}\nshow")
    view = view_messages(messages)
    assert len(view) >= 3
    for message in view:
        html = message["content"]["data"]["text/html"]
        assert (
            "<img" not in html
            and "<script" not in html
            and "onerror=" not in html.replace("&lt;img src=x onerror=alert(1)&gt;", "")
        )
    assert "&lt;img src=x onerror=alert(1)&gt;" in view[-1]["content"]["data"]["text/html"]


def test_options_history_and_interpolation_reach_every_model(kernel2, ollama_server, openai_server):
    kernel2.run("topic = 'owls'")
    kernel2.run(f"%%localmind {OLLAMA} -m {OPENAI} -s 'be brief' -t 0 --seed 3\nAbout {{topic}}")
    kernel2.run(f"%%localmind {OLLAMA} {OPENAI}\nAnd again")
    chats_o = [b for _m, p, b in ollama_server.requests if p == "/api/chat"]
    chats_a = [b for _m, p, _h, b in openai_server.requests if "chat" in p]
    assert chats_o[0]["messages"][-1]["content"] == "About owls"
    assert chats_a[0]["messages"][-1]["content"] == "About owls"
    assert chats_o[0]["options"]["seed"] == 3 and chats_a[0]["seed"] == 3
    assert chats_o[0]["messages"][0] == {"role": "system", "content": "be brief"}
    # Each model's own conversation continues: its own earlier answer, not the other's.
    history_o = [m["content"] for m in chats_o[1]["messages"]]
    history_a = [m["content"] for m in chats_a[1]["messages"]]
    assert history_o == ["About owls", "You said: About owls", "And again"]
    assert history_a == ["About owls", "You said: About owls", "And again"]


def test_schema_gives_a_dict_of_parsed_objects(kernel2, ollama_server, openai_server):
    kernel2.run("from pydantic import BaseModel\nclass City(BaseModel):\n    name: str\n")
    ollama_server.reply_pieces = ['{"name": ', '"Paris"}']
    openai_server.json_reply = '{"name": "Lyon"}'
    messages = kernel2.run(f"%%localmind {OLLAMA} {OPENAI} --schema City -o cities\nA city?")
    assert not of_type(messages, "error"), printed(messages)
    assert value_of(kernel2, "{k: v.name for k, v in cities.items()}") == {
        OLLAMA: "Paris",
        OPENAI: "Lyon",
    }
    final = view_messages(messages)[-1]["content"]
    assert final["metadata"]["localmind"]["format"] == "json"
    params = [m["parameters"] for m in final["metadata"]["localmind"]["models"]]
    assert all(p["schema"] == "City" for p in params)
    chats_o = [b for _m, p, b in ollama_server.requests if p == "/api/chat"]
    assert isinstance(chats_o[-1]["format"], dict)


def test_a_thinking_model_shows_its_trace_in_its_column(kernel2, ollama_server, openai_server):
    openai_server.reasoning_pieces = ["Let me ", "think <b>hard</b>."]
    openai_server.token_delay = 0.02
    messages = kernel2.run(f"%%localmind {OLLAMA} {OPENAI}\nWhy?")
    assert not of_type(messages, "error"), printed(messages)
    html = view_messages(messages)[-1]["content"]["data"]["text/html"]
    assert html.count("<details>") == 1 and "<summary>Thinking</summary>" in html
    assert "think &lt;b&gt;hard&lt;/b&gt;." in html and "<b>" not in html
    assert "You said: Why?" in html


def test_untrusted_text_stays_text_when_stopped(kernel2, ollama_server, openai_server):
    ollama_server.reply_pieces = [PAYLOAD] * 200
    openai_server.reply_pieces = [PAYLOAD] * 200
    ollama_server.token_delay = openai_server.token_delay = 0.05
    sent: list[bool] = []

    def interrupt(msg: dict) -> None:
        if msg["msg_type"] == "update_display_data" and not sent:
            texts = column_texts(msg["content"]["data"]["text/plain"], [OLLAMA, OPENAI])
            if all(t.count("<script>") >= 2 for t in texts):
                sent.append(True)
                kernel2.manager.interrupt_kernel()

    messages = kernel2.run(f"%%localmind {OLLAMA} {OPENAI}\ngo", on_message=interrupt)
    assert sent
    final = view_messages(messages)[-1]["content"]
    assert final["metadata"]["localmind"]["stopped"] is True
    html = final["data"]["text/html"]
    assert "<img" not in html and "<script" not in html
    assert html.count("&lt;script&gt;") >= 4


def test_fast_streams_are_throttled_and_complete(kernel2, ollama_server, openai_server):
    ollama_server.reply_pieces = [f"o{i} " for i in range(5000)]
    openai_server.reply_pieces = [f"a{i} " for i in range(5000)]
    start = time.monotonic()
    messages = kernel2.run(f"%%localmind {OLLAMA} {OPENAI} --no-stats\ngo", timeout=120)
    elapsed = time.monotonic() - start
    updates = [m for m in view_messages(messages) if m["msg_type"] == "update_display_data"]
    # At most 20 a second while streaming, plus one as each column ends and the final one.
    assert len(updates) <= elapsed * 20 + 4, f"{len(updates)} updates in {elapsed:.1f} s"
    texts = column_texts(updates[-1]["content"]["data"]["text/plain"], [OLLAMA, OPENAI])
    assert texts[0].startswith("".join(ollama_server.reply_pieces))
    assert texts[1].startswith("".join(openai_server.reply_pieces))
    assert not any(
        "<table>" in m["content"]["data"].get("text/html", "")
        for m in messages[1:]
        if m["msg_type"] == "display_data"
    ), "--no-stats still showed the table"
