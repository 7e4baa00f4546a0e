"""The magic in a real Jupyter kernel: display updates on IOPub, throttling, interrupt."""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")


class Kernel:
    """A started kernel and its client, with a helper that runs code and collects IOPub."""

    def __init__(self, home: Path) -> None:
        from jupyter_client.manager import start_new_kernel

        env = {
            **os.environ,
            "LOCALMIND_HOME": str(home),
            "PYTHONPATH": str(REPO),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
        self.manager, self.client = start_new_kernel(
            kernel_name="python3", startup_timeout=60, env=env, cwd=str(REPO)
        )

    def run(self, code: str, timeout: float = 60, on_message: Any = None) -> list[dict]:
        """Execute and return this execution's IOPub messages until the kernel is idle."""
        msg_id = self.client.execute(code)
        messages: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if on_message is not None:
                on_message(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return messages
        raise TimeoutError(f"no idle after {timeout} s; got {[m['msg_type'] for m in messages]}")

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def of_type(messages: list[dict], *types: str) -> list[dict]:
    return [m for m in messages if m["msg_type"] in types]


def answer_messages(messages: list[dict]) -> list[dict]:
    """The display and updates of the answer (the first display_id shown)."""
    displays = of_type(messages, "display_data", "update_display_data")
    ids = [m["content"].get("transient", {}).get("display_id") for m in displays]
    first = next(i for i in ids if i)
    return [m for m, i in zip(displays, ids, strict=True) if i == first]


def test_answer_streams_through_display_updates(kernel, ollama_server):
    ollama_server.reply_pieces = [f"word{i} " for i in range(30)]
    ollama_server.token_delay = 0.03
    messages = kernel.run("%%localmind\nhello")
    answer = answer_messages(messages)
    updates = [m for m in answer if m["msg_type"] == "update_display_data"]
    assert len(updates) >= 4, "the answer did not appear piece by piece"
    texts = [m["content"]["data"]["text/plain"] for m in updates]
    # The last update carries the final metadata (stats, stopped) and may repeat the text
    # of the update before it, when the last piece was drawn just before the end.
    assert len(set(texts[:-1])) == len(texts) - 1, "a streamed update repeated the same text"
    final = updates[-1]["content"]
    expected = "".join(ollama_server.reply_pieces)
    assert final["data"]["text/plain"] == expected
    assert final["data"]["text/html"] == f"<p>{expected.strip()}</p>\n"
    assert "text/markdown" not in final["data"], "raw Markdown would render as trusted HTML"
    meta = final["metadata"]["localmind"]
    assert meta["backend"] == "ollama" and meta["model"] == "smollm:135m"
    assert meta["stats"]["completion_tokens"] == 30
    assert meta["stopped"] is False
    footer = of_type(messages, "display_data")[-1]["content"]["data"]["text/plain"]
    assert footer.startswith("ollama:smollm:135m · 30 tokens")
    assert not of_type(messages, "error")


def test_fast_stream_is_throttled_and_complete(kernel, ollama_server):
    ollama_server.reply_pieces = [f"t{i} " for i in range(20_000)]
    start = time.monotonic()
    messages = kernel.run("%%localmind --no-stats\ngo", timeout=120)
    elapsed = time.monotonic() - start
    updates = [m for m in answer_messages(messages) if m["msg_type"] == "update_display_data"]
    assert len(updates) <= elapsed * 20 + 3, f"{len(updates)} updates in {elapsed:.1f} s"
    assert updates[-1]["content"]["data"]["text/plain"] == "".join(ollama_server.reply_pieces)


def test_interrupt_stops_the_source_and_keeps_the_partial_answer(kernel, ollama_server):
    ollama_server.reply_pieces = [f"w{i} " for i in range(400)]
    ollama_server.token_delay = 0.05
    interrupted_at: list[float] = []

    def interrupt_after_some_updates(msg: dict) -> None:
        if msg["msg_type"] == "update_display_data" and not interrupted_at:
            text = msg["content"]["data"].get("text/plain", "")
            if text.count(" ") >= 5:
                interrupted_at.append(time.monotonic())
                kernel.manager.interrupt_kernel()

    disconnected_at: list[float] = []

    def watch() -> None:
        if ollama_server.disconnected.wait(30):
            disconnected_at.append(time.monotonic())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    messages = kernel.run("%%localmind -o partial\ngo", on_message=interrupt_after_some_updates)
    watcher.join(10)
    assert interrupted_at, "never saw enough of the answer to interrupt"
    assert disconnected_at, "the server never saw the client leave"
    assert disconnected_at[0] - interrupted_at[0] < 0.5, "the source kept generating"
    assert ollama_server.chunks_sent < 100
    final = [m for m in answer_messages(messages) if m["msg_type"] == "update_display_data"][-1]
    partial = final["content"]["data"]["text/plain"]
    assert partial.startswith("w0 w1 w2 w3 w4 ")
    meta = final["content"]["metadata"]["localmind"]
    assert meta["stopped"] is True
    assert meta["stats"]["finish_reason"] == "cancelled"
    assert meta["stats"]["duration"] > 0 and meta["stats"]["time_to_first_token"] > 0
    notes = [m["content"]["data"]["text/plain"] for m in of_type(messages, "display_data")]
    assert any("stopped" in n for n in notes)
    assert not of_type(messages, "error"), "the interrupt became a traceback"
    # The partial answer is kept in the variable too, and the kernel still works.
    check = kernel.run("print(repr(partial[:15]))")
    printed = "".join(m["content"]["text"] for m in of_type(check, "stream"))
    assert "w0 w1 w2 w3 w4" in printed


def test_errors_in_the_kernel_are_one_message(kernel, ollama_server):
    messages = kernel.run("%%localmind ollama:ghost:1b\nhi")
    assert not of_type(messages, "error")
    shown = of_type(messages, "display_data", "update_display_data")
    texts = [m["content"]["data"]["text/plain"] for m in shown]
    assert any("not installed in Ollama" in t and "%localmind pull" in t for t in texts)


def test_pull_in_a_notebook_shows_a_progress_widget(kernel, ollama_server):
    ollama_server.pull_delay = 0.01
    messages = kernel.run("%localmind pull tinyllama")
    widget_views = [
        m
        for m in of_type(messages, "display_data")
        if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
    ]
    assert widget_views, "no progress widget was shown"
    printed = "".join(m["content"]["text"] for m in of_type(messages, "stream"))
    assert "ollama:tinyllama is ready" in printed
    assert "tinyllama:latest" in ollama_server.installed
    assert not of_type(messages, "error")


def test_interrupt_cancels_a_pull(kernel, ollama_server):
    ollama_server.pull_delay = 0.3
    interrupted: list[float] = []

    def interrupt_once(msg: dict) -> None:
        if msg["msg_type"] == "display_data" and not interrupted:
            interrupted.append(time.monotonic())
            time.sleep(0.5)
            kernel.manager.interrupt_kernel()

    messages = kernel.run("%localmind pull all-minilm", on_message=interrupt_once)
    assert interrupted
    texts = [
        m["content"]["data"].get("text/plain", "")
        for m in of_type(messages, "display_data")
        if "text/plain" in m["content"]["data"]
    ]
    assert any("cancelled" in t for t in texts)
    assert "all-minilm:latest" not in ollama_server.installed
    assert not of_type(messages, "error")


def test_a_failed_request_leaves_one_output_the_message(kernel, ollama_server):
    messages = kernel.run("%%localmind ollama:ghost:1b\nhi")
    answer = answer_messages(messages)
    final = answer[-1]["content"]["data"]["text/plain"]
    assert "not installed in Ollama" in final
    outputs = of_type(messages, "display_data")
    assert len(outputs) == 1, "an empty output was left beside the message"


def _interrupt_when(kernel: Kernel, ready: Any, timeout: float = 30) -> threading.Thread:
    """Interrupt the kernel from another thread once ``ready()`` is true."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        kernel.manager.interrupt_kernel()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_interrupt_without_streaming_keeps_the_partial_answer(kernel, ollama_server):
    ollama_server.reply_pieces = [f"w{i} " for i in range(400)]
    ollama_server.token_delay = 0.05
    watcher = _interrupt_when(kernel, lambda: ollama_server.chunks_sent >= 8)
    messages = kernel.run("%%localmind --no-stream -o partial\ngo")
    watcher.join(5)
    assert ollama_server.chunks_sent < 100, "the source kept generating"
    updates = [m for m in answer_messages(messages) if m["msg_type"] == "update_display_data"]
    assert len(updates) == 1, "--no-stream showed pieces while generating"
    final = updates[0]["content"]
    assert final["data"]["text/plain"].startswith("w0 w1 w2 w3 w4 w5 ")
    assert "<p>w0 w1 w2 w3 w4 w5 " in final["data"]["text/html"]
    assert final["metadata"]["localmind"]["stopped"] is True
    notes = [m["content"]["data"]["text/plain"] for m in of_type(messages, "display_data")]
    assert any("the partial answer is kept above" in n for n in notes)
    assert not of_type(messages, "error"), "the interrupt became a traceback"
    check = kernel.run("print(repr(partial[:18]))")
    printed = "".join(m["content"]["text"] for m in of_type(check, "stream"))
    assert "w0 w1 w2 w3 w4 w5" in printed


def test_nothing_before_the_failure_shows_the_message_alone(kernel, ollama_server):
    ollama_server.fail_status = 500  # fails before the first piece
    ollama_server.error_message = "runner crashed"
    messages = kernel.run("%%localmind\nhi")
    shown = of_type(messages, "display_data", "update_display_data")
    texts = [m["content"]["data"]["text/plain"] for m in shown]
    assert len(shown) == 2, f"an empty answer or footer around the error: {texts}"
    assert texts[0].startswith("⏳") and "HTTP 500" in texts[1] and "runner crashed" in texts[1]

    ollama_server.fail_status = None
    ollama_server.reply_pieces = ["", "late"]
    ollama_server.drop_after = 1  # the stream opens, then drops before any text
    messages = kernel.run("%%localmind --no-stream\nhi")
    texts = [
        m["content"]["data"]["text/plain"]
        for m in of_type(messages, "display_data", "update_display_data")
    ]
    assert len(texts) == 2 and "dropped" in texts[1], texts

    ollama_server.drop_after = ollama_server.reply_pieces = None
    ollama_server.stall_after = 0  # nothing arrives; the user interrupts
    ollama_server.stall_seconds = 30
    waiting = threading.Event()
    _interrupt_when(kernel, waiting.is_set)
    messages = kernel.run(
        "%%localmind\nhi", on_message=lambda m: m["msg_type"] == "display_data" and waiting.set()
    )
    texts = [
        m["content"]["data"]["text/plain"]
        for m in of_type(messages, "display_data", "update_display_data")
    ]
    assert len(texts) == 2 and "stopped before any answer arrived" in texts[1], texts
    assert not of_type(messages, "error")
