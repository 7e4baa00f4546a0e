"""``%%localmind MODEL_A MODEL_B`` in a terminal IPython (a real InteractiveShell, no kernel):
the answers print one after another, each under its header, then the table."""

from __future__ import annotations

import pytest

from tests.test_magic_shell import ask, ip, servers  # noqa: F401 - fixtures

OLLAMA = "ollama:smollm:135m"
REMOTE = "remote:gpt-test"


def test_answers_print_one_after_another_then_the_table(ip, servers, capsys):  # noqa: F811
    ollama, openai = servers
    ollama.reply_pieces = [f"o{i} " for i in range(6)]
    openai.reply_pieces = [f"a{i} " for i in range(6)]
    ollama.token_delay = openai.token_delay = 0.02
    ask(ip, f"{REMOTE} {OLLAMA} -o both", "hello \x1b]0;pwned\x07there")
    out = capsys.readouterr().out
    first = out.index(f"── {REMOTE} ──")
    second = out.index(f"── {OLLAMA} ──")
    assert first < out.index("a0 a1 a2 a3 a4 a5") < second < out.index("o0 o1 o2 o3 o4 o5")
    table = out.index("\nmodel ")
    assert table > second
    rows = [line for line in out[table:].splitlines() if line.startswith((REMOTE, OLLAMA))]
    assert len(rows) == 2 and all("stop" in row for row in rows)
    assert "\x1b" not in out
    assert ip.user_ns["both"] == {REMOTE: "a0 a1 a2 a3 a4 a5 ", OLLAMA: "o0 o1 o2 o3 o4 o5 "}
    assert [r.backend for r in ip.user_ns["_localmind"]] == ["remote", "ollama"]


def test_a_failed_model_prints_its_error_in_its_place(ip, servers, capsys):  # noqa: F811
    ask(ip, f"{OLLAMA} -m ollama:ghost:1b", "hi")
    out = capsys.readouterr().out
    ghost = out.index("── ollama:ghost:1b ──")
    assert out.index("You said: hi") < ghost < out.index("not installed")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"{OLLAMA} {OLLAMA}", "named twice"),
        (f"{OLLAMA} {REMOTE} --over df --into x", "name one model, not several"),
        (f"{OLLAMA} {REMOTE} --no-stream", "--no-stream cannot be used"),
        (f"{OLLAMA} {REMOTE} -t 7", "temperature"),
    ],
)
def test_bad_cells_say_why_and_send_nothing(ip, servers, capsys, line, message):  # noqa: F811
    ollama, _ = servers
    ask(ip, line, "hi")
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    assert not [r for r in ollama.requests if r[1] == "/api/chat"]


def test_an_interrupt_prints_every_partial_answer(ip, servers, capsys):  # noqa: F811
    import _thread
    import threading
    import time

    ollama, openai = servers
    ollama.reply_pieces = [f"o{i} " for i in range(200)]
    openai.reply_pieces = [f"a{i} " for i in range(200)]
    ollama.token_delay = openai.token_delay = 0.05

    def interrupt_mid_answer() -> None:
        deadline = time.monotonic() + 10
        while min(ollama.chunks_sent, openai.chunks_sent) < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        _thread.interrupt_main()  # what Ctrl-C does

    threading.Thread(target=interrupt_mid_answer, daemon=True).start()
    start = time.monotonic()
    ask(ip, f"{OLLAMA} {REMOTE} -o parts", "go")
    assert time.monotonic() - start < 8
    out = capsys.readouterr().out
    assert out.index(f"── {OLLAMA} ──") < out.index("o0 o1 o2") < out.index(f"── {REMOTE} ──")
    assert out.index(f"── {REMOTE} ──") < out.index("a0 a1 a2")
    assert out.count("cancelled") >= 2  # each column's footer, and the table's rows
    parts = ip.user_ns["parts"]
    assert parts[OLLAMA].startswith("o0 o1 o2") and parts[REMOTE].startswith("a0 a1 a2")
    assert [r.finish_reason for r in ip.user_ns["_localmind"]] == ["cancelled", "cancelled"]
