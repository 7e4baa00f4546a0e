"""The front ends and the answer log: each marks its source; ``%localmind log`` and
``log_entries()`` show what was logged, model output as text only."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

import localmind_jupyter
from localmind_jupyter.core.answer_log import AnswerLog
from localmind_jupyter.paths import log_path
from tests.test_magic_kernel import of_type
from tests.test_magic_shell import ask, ip, servers  # noqa: F401 - the fixtures, shared
from tests.test_server_extension import (  # noqa: F401 - the fixtures, shared
    extension_config,
    extra_server_config,
    jp_server_config,
    localmind_config,
    ndjson,
    state,
)

pytest_plugins = ["pytest_jupyter.jupyter_server"]

XSS = "<img src=x onerror=alert(1)>"


def _entries() -> list[dict[str, Any]]:
    return AnswerLog(log_path()).entries(limit=100)


# --- the magic in a terminal IPython ------------------------------------------------------------
def test_a_cell_is_logged_as_magic_and_log_shows_it(ip, servers, capsys) -> None:  # noqa: F811
    ollama_server, _ = servers
    ollama_server.reply_pieces = ["Paris ", "is ", "the ", "capital."]
    ask(ip, "--temperature 0.2 --seed 3", "capital of France?")
    ollama_server.reply_pieces = ["other\tanswer\x1b[2J ", "x" * 200]
    ask(ip, "ollama:qwen2.5:0.5b", "second\nprompt")
    (second, first) = _entries()
    assert first["source"] == "magic" and first["model"] == "smollm:135m"
    assert first["prompt"] == "capital of France?" and first["answer"] == "Paris is the capital."
    assert first["options"]["seed"] == 3 and first["options"]["temperature"] == 0.2
    assert first["completion_tokens"] == 4 and first["duration"] is not None
    assert second["model"] == "qwen2.5:0.5b" and second["source"] == "magic"
    capsys.readouterr()
    ip.run_line_magic("localmind", "log")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "time" in lines[1] and "source" in lines[1] and "finish" in lines[1]
    assert "ollama:qwen2.5:0.5b" in lines[3] and "ollama:smollm:135m" in lines[4]  # newest first
    assert "second prompt" in lines[3] and "other answer[2J x" in lines[3] and "\x1b" not in out
    assert "xxx…" in lines[3] and "x" * 80 not in out  # cut short
    assert (
        "capital of France?" in lines[4]
        and f"{first['prompt_tokens']} → 4" in lines[4]
        and "stop" in lines[4]
    )
    ip.run_line_magic("localmind", "log -n 1 --model ollama:smollm:135m")
    out = capsys.readouterr().out
    assert "capital of France?" in out and "second prompt" not in out
    ip.run_line_magic("localmind", "log --search PARIS")
    out = capsys.readouterr().out
    assert "capital of France?" in out and "second prompt" not in out
    ip.run_line_magic("localmind", "log --search nothing-like-this")
    assert "(none)" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["-n 0", "-n -3", "-n many", "-n", "--frob"])
def test_log_with_a_bad_option_says_what_is_wrong(ip, servers, capsys, bad) -> None:  # noqa: F811
    ip.run_line_magic("localmind", f"log {bad}")
    captured = capsys.readouterr()
    assert (
        "usage: %localmind log [-n N] [--search TEXT] [--model M]" in captured.err
        and "Traceback" not in captured.err
    )
    if bad.startswith("-n "):
        assert "argument -n: expected a positive whole number (e.g. -n 50)" in captured.err


def test_log_escapes_model_output_in_html(ip, servers) -> None:  # noqa: F811
    ollama_server, _ = servers
    ollama_server.reply_pieces = [XSS]
    ask(ip, "", "show me html")
    from localmind_jupyter.magics.log_table import log_table

    markup = log_table(_entries())._repr_html_()
    assert "&lt;img src=x onerror=alert(1)&gt;" in markup and "<img" not in markup


def test_log_entries_is_a_dataframe_newest_first(ip, servers) -> None:  # noqa: F811
    ollama_server, _ = servers
    for word in ("one", "two"):
        ollama_server.reply_pieces = [word]
        ask(ip, "", f"say {word}")
    frame = localmind_jupyter.log_entries()
    assert list(frame["answer"]) == ["two", "one"] and list(frame["source"]) == ["magic"] * 2
    assert frame.loc[0, "prompt"] == "say two" and frame.loc[0, "completion_tokens"] == 1
    assert len(localmind_jupyter.log_entries(limit=1, search="ONE")) == 1
    assert "log_entries" in localmind_jupyter.__all__


def test_log_entries_without_pandas_is_a_list(
    ip,  # noqa: F811
    servers,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    ask(ip, "", "hello")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    rows = localmind_jupyter.log_entries()
    assert isinstance(rows, list) and rows[0]["prompt"] == "hello"


def test_log_with_the_log_off_says_so_and_writes_nothing(
    ip,  # noqa: F811
    isolated_home: Path,
    ollama_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (isolated_home / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            log: false
            default_model: ollama:smollm:135m
            backends:
              ollama:
                settings: {{base_url: "{ollama_server.url}"}}
            """
        )
    )
    ask(ip, "", "hello")
    ip.run_line_magic("localmind", "log")
    assert "the answer log is off (log: false" in capsys.readouterr().out
    assert not log_path().exists()


# --- the magic in a real kernel -----------------------------------------------------------------
def test_a_kernel_cell_is_logged_and_log_false_writes_no_file(
    kernel: Any, ollama_server: Any, isolated_home: Path
) -> None:
    config = isolated_home / "config.yaml"
    text = config.read_text()
    config.write_text("log: false\n" + text)  # read on the first cell, not at %load_ext
    assert not of_type(kernel.run("%%localmind\nnot logged"), "error")
    assert not log_path().exists()
    config.write_text(text)
    kernel.run("%localmind reload")
    ollama_server.reply_pieces = ["logged ", XSS]
    assert not of_type(kernel.run("%%localmind --max-tokens 50\nlog me"), "error")
    (row,) = _entries()
    assert (row["source"], row["backend"], row["model"]) == ("magic", "ollama", "smollm:135m")
    assert row["prompt"] == "log me" and row["answer"] == f"logged {XSS}"
    assert row["completion_tokens"] == 2 and row["options"]["max_tokens"] == 50
    messages = kernel.run("%localmind log")
    (shown,) = of_type(messages, "display_data")
    markup = shown["content"]["data"]["text/html"]
    assert "log me" in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
    assert "<img" not in markup


# --- the REST API -------------------------------------------------------------------------------
async def _generate(jp_fetch: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    chunks: list[bytes] = []
    response = await jp_fetch(
        "localmind",
        "api",
        "generate",
        method="POST",
        body=json.dumps(body),
        streaming_callback=chunks.append,
    )
    assert response.code == 200
    return ndjson(chunks)


async def test_a_rest_generate_is_logged_as_rest(jp_fetch: Any, ollama_server: Any) -> None:
    lines = await _generate(
        jp_fetch,
        {"prompt": "over rest", "model": "smollm:135m", "backend": "ollama", "seed": 5},
    )
    done = lines[-1]["response"]
    (row,) = _entries()
    assert (row["source"], row["backend"], row["model"]) == ("rest", "ollama", "smollm:135m")
    assert row["prompt"] == "over rest" and row["answer"] == done["text"]
    assert row["completion_tokens"] == done["completion_tokens"] and row["options"]["seed"] == 5


async def test_a_rest_generate_with_log_false_writes_no_file(
    jp_fetch: Any,
    localmind_config: Path,  # noqa: F811
) -> None:
    localmind_config.write_text("log: false\n" + localmind_config.read_text())  # before 1st use
    lines = await _generate(
        jp_fetch, {"prompt": "not logged", "model": "smollm:135m", "backend": "ollama"}
    )
    assert lines[-1]["type"] == "done" and not log_path().exists()
