"""The model manager's Compare panel against the Ollama test server, in-process.

As in ``test_widgets.py``, ipywidgets runs without a front end: the panel is built,
clicked and read here as in a notebook. The comparison runs on the panel's background
thread through the core's ``run_compare`` (the path of ``%%localmind A B``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ipywidgets.widgets import widget as widget_module

from localmind_jupyter.session import reset_session
from tests.conftest import REPO
from tests.test_widgets import until

A, B = "ollama:smollm:135m", "ollama:qwen2.5:0.5b"
PAYLOAD = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture(autouse=True)
def fresh_session() -> Iterator[None]:
    reset_session()
    yield
    reset_session()
    for instance in list(widget_module._instances.values()):
        instance.close()


@pytest.fixture
def manager(isolated_home: Path, ollama_server: Any) -> Any:
    """A model manager whose one backend is the test server, refreshed."""
    from localmind_jupyter import ModelManager

    (isolated_home / "config.yaml").write_text(
        "backends:\n"
        + textwrap.indent(f'ollama:\n  settings: {{base_url: "{ollama_server.url}"}}\n', "  ")
    )
    panel = ModelManager()
    assert panel.wait(30)
    return panel


def chats(server: Any) -> list[Any]:
    return [body for _m, path, body in server.requests if path == "/api/chat"]


def test_two_selected_models_answer_side_by_side(manager: Any, ollama_server: Any) -> None:
    panel = manager.compare_panel
    assert panel in manager.children[3].children  # under the catalog, in the manager
    assert sorted(panel.models.options) == [B, A]  # the installed models, as backend:model
    ollama_server.reply_pieces = ["Hello ", PAYLOAD, " and ", "<script>x()</script>", " bye"]
    ollama_server.token_delay = 0.02
    panel.select([A, B])
    panel.prompt.value = "Say hello"
    panel.compare_button.click()
    assert panel.running and panel.stop_button.disabled is False
    assert panel.wait(30)

    assert [a.finish_reason for a in panel.answers] == ["stop", "stop"]
    assert [a.model for a in panel.answers] == ["smollm:135m", "qwen2.5:0.5b"]
    html = panel.view.value
    assert html.count("Hello") == 2 and html.count("bye") == 2  # both columns filled
    assert html.count("<tr>") == 3  # the table: a header and one row per model
    assert "smollm:135m" in html and "qwen2.5:0.5b" in html
    assert "<img" not in html and "<script" not in html  # model text shows as text
    assert "&lt;img src=x onerror" in html
    assert sorted(body["model"] for body in chats(ollama_server)) == ["qwen2.5:0.5b", "smollm:135m"]
    assert all(body["messages"][-1]["content"] == "Say hello" for body in chats(ollama_server))
    assert "done" in panel.message.value and panel.compare_button.disabled is False


def test_a_failing_model_shows_its_error_in_its_column(manager: Any, ollama_server: Any) -> None:
    panel = manager.compare_panel
    panel.select([A, B])
    # Removed after the list was shown: that model's request fails, the other answers.
    httpx.request("DELETE", f"{ollama_server.url}/api/delete", json={"model": "qwen2.5:0.5b"})
    assert panel.compare("Are you there?")
    assert panel.wait(30)

    ok, failed = panel.answers
    assert ok.finish_reason == "stop" and ok.text == "You said: Are you there?"
    assert failed.finish_reason == "error" and "qwen2.5:0.5b" in (failed.error or "")
    html = panel.view.value
    first, second = html.split("qwen2.5:0.5b</strong>", 1)  # the second column's header on
    assert "You said: Are you there?" in first and "⚠️" not in first
    assert "⚠️" in second and "failed" in second
    assert "1 failed" in panel.message.value


def test_stop_cancels_every_stream(manager: Any, ollama_server: Any) -> None:
    panel = manager.compare_panel
    ollama_server.reply_pieces = [f"w{i} " for i in range(200)]
    ollama_server.token_delay = 0.05  # 10 s per answer
    panel.select([A, B])
    started = time.monotonic()
    assert panel.compare("Count")
    until(lambda: all(len(c.pieces) >= 2 for c in panel.columns), timeout=10)
    panel.stop_button.click()
    assert panel.wait(10)
    assert time.monotonic() - started < 6

    assert [a.finish_reason for a in panel.answers] == ["cancelled", "cancelled"]
    assert all(a.text.startswith("w0 w1 ") for a in panel.answers)  # partial answers kept
    assert panel.view.value.count("stopped") >= 2 and "stopped" in panel.message.value
    until(lambda: ollama_server.disconnects >= 2, timeout=5)  # both closed at the source


def test_bad_input_is_refused_before_anything_is_sent(manager: Any, ollama_server: Any) -> None:
    panel = manager.compare_panel
    panel.select([A])
    assert not panel.compare("Hi")
    assert "two or more models" in panel.message.value
    panel.select([A, B])
    assert not panel.compare("   ")
    assert "type a prompt" in panel.message.value
    assert chats(ollama_server) == [] and not panel.running


def test_a_downloaded_model_can_be_compared_at_once(manager: Any, ollama_server: Any) -> None:
    ollama_server.pull_delay = 0.01
    manager.catalog.select("ollama", "tinyllama:latest")
    manager.catalog.download_button.click()
    row = manager.downloads.row_for("ollama", "tinyllama:latest")
    assert row is not None and row.download.wait(15).state == "done"
    panel = manager.compare_panel
    assert "ollama:tinyllama:latest" in panel.models.options  # no refresh needed
    panel.select([A, "ollama:tinyllama:latest"])
    assert panel.compare("Hi")
    assert panel.wait(30)
    assert [a.finish_reason for a in panel.answers] == ["stop", "stop"]


def test_the_panel_imports_no_magic() -> None:
    """A front end apart from the magic: the view's builders come without the magic's code."""
    code = (
        "import sys, localmind_jupyter.widgets.compare_panel\n"
        "bad = [m for m in ('localmind_jupyter.magics.magic', 'localmind_jupyter.magics"
        ".compare_cell') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
