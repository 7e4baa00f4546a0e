"""In a terminal, model text can only print: its escape sequences never reach the screen."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from localmind_jupyter.demo import _Printer
from localmind_jupyter.magics.render import TerminalView, finalize
from localmind_jupyter.safe_display import terminal_text
from tests.conftest import REPO

#: Retitle the terminal, clear the screen, move up and overwrite, a bell, a C1 CSI.
HOSTILE = "safe \x1b]0;pwned\x07title \x1b[2J\x1b[1A\rover\x9b31m text\x00\x7f\nline 2\tend"


def test_terminal_text_keeps_only_what_prints() -> None:
    assert terminal_text(HOSTILE) == "safe ]0;pwnedtitle [2J[1Aover31m text\nline 2\tend"
    assert terminal_text("déjà vu — ✓ 日本\n\tok") == "déjà vu — ✓ 日本\n\tok"


def test_terminal_view_prints_no_escape_sequence() -> None:
    out = io.StringIO()
    view = TerminalView("markdown", stream=out)
    pieces = [HOSTILE[i : i + 3] for i in range(0, len(HOSTILE), 3)]
    for piece in pieces:
        view.on_piece(piece, None)
    view.finish(HOSTILE, finalize(HOSTILE, "markdown"), {})
    view.note("model said \x1b[31mred")
    view.footer("m \x1b]0;t\x07")
    shown = out.getvalue()
    assert not any(ch in shown for ch in "\x1b\x07\x9b\r\x00\x7f"), repr(shown)
    assert "over31m text\nline 2\tend" in shown


def test_demo_printer_drops_escape_sequences_from_outputs() -> None:
    out = io.StringIO()
    printer = _Printer(out)
    waiting = {"text/plain": "⏳ ollama:m …"}
    printer.handle(
        {
            "msg_type": "display_data",
            "content": {"data": waiting, "transient": {"display_id": "a"}},
        }
    )
    for text in (HOSTILE[:9], HOSTILE):
        printer.handle(
            {
                "msg_type": "update_display_data",
                "content": {"data": {"text/plain": text}, "transient": {"display_id": "a"}},
            }
        )
    printer.handle({"msg_type": "stream", "content": {"text": "\x1b]0;x\x07printed\n"}})
    shown = out.getvalue().replace("\r\x1b[K", "")  # the demo's own line replacement
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown, repr(shown)
    assert "line 2\tend" in shown and "printed" in shown


def test_command_line_answer_prints_no_escape_sequence(ollama_server) -> None:
    ollama_server.reply_pieces = [HOSTILE[:10], HOSTILE[10:]]
    env = {**os.environ, "OLLAMA_HOST": ollama_server.url, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "localmind_jupyter", "-m", "ollama:smollm:135m", "hello"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stdout and "\x07" not in run.stdout, repr(run.stdout)
    assert terminal_text(HOSTILE) in run.stdout


def test_command_line_thinking_goes_apart_to_stderr_without_escapes(capsys) -> None:
    from localmind_jupyter.__main__ import _TraceToStderr, main

    trace = _TraceToStderr()
    trace.write("Paris\x1b]0;pwned\x07 is")
    trace.write(" the capital")
    trace.end()
    trace.end()  # ended once
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "[thinking]\nParis]0;pwned is the capital\n[/thinking]\n"
    with pytest.raises(SystemExit):
        main(["--think", "--no-think", "hello"])
    assert "not allowed with argument" in capsys.readouterr().err
