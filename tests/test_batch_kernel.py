"""A batch in a real Jupyter kernel: the progress widget, and an interrupt (the kernel's
stop button) that keeps the finished rows, closes the requests in flight and returns."""

from __future__ import annotations

import threading
import time

import pytest

from tests.test_magic_kernel import of_type

pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

WIDGET = "application/vnd.jupyter.widget-view+json"


def _printed(messages: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in of_type(messages, "stream"))


def _chats(server) -> int:
    return sum(1 for _, path, _ in server.requests if path == "/api/chat")


def test_a_batch_shows_a_progress_widget(kernel, ollama_server):
    messages = kernel.run(
        "import localmind_jupyter as lm\n"
        "r = lm.batch([f'row {i}' for i in range(6)])\n"
        "print(r.counts, r.texts[5])"
    )
    assert not of_type(messages, "error")
    assert any(WIDGET in m["content"]["data"] for m in of_type(messages, "display_data"))
    assert "{'ok': 6, 'error': 0, 'cancelled': 0} You said: row 5" in _printed(messages)
    states = [
        m["content"]["data"]["state"]
        for m in of_type(messages, "comm_msg")
        if m["content"]["data"].get("method") == "update"
    ]
    values = [s["value"] for s in states if "value" in s and isinstance(s["value"], int)]
    assert values and values[-1] == 6, "the bar did not reach the total"


def test_an_interrupt_keeps_finished_rows_and_closes_the_requests_in_flight(kernel, ollama_server):
    ollama_server.token_delay = 0.1  # each answer: 4 pieces, about 0.4 s
    total = 30
    code = (
        "import localmind_jupyter as lm\n"
        f"prompts = [f'row {{i}}' for i in range({total})]\n"
        "r = lm.batch(prompts, concurrency=2)\n"
        "print('counts', r.counts, r.cancelled)"
    )
    interrupted: list[float] = []

    def interrupt_after_some_rows() -> None:
        deadline = time.monotonic() + 30
        while _chats(ollama_server) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.15)  # two rows are mid-answer now
        interrupted.append(time.monotonic())
        kernel.manager.interrupt_kernel()

    watcher = threading.Thread(target=interrupt_after_some_rows, daemon=True)
    watcher.start()
    messages = kernel.run(code, timeout=60)
    returned = time.monotonic()
    watcher.join(5)
    assert interrupted, "never interrupted"
    assert returned - interrupted[0] < 4, "the cell did not return soon after the interrupt"
    assert not of_type(messages, "error"), "the interrupt became a traceback"
    printed = _printed(messages)
    assert "True" in printed.split("counts", 1)[1], printed
    sent = _chats(ollama_server)
    assert sent < total, "rows after the interrupt were still sent"
    time.sleep(0.5)
    assert ollama_server.disconnects >= 1, "the requests in flight were not closed"
    notes = " ".join(
        str(m["content"]["data"])
        for m in of_type(messages, "display_data", "update_display_data", "comm_msg")
    )
    assert "batch interrupted" in notes + printed and "again" in notes + printed

    # The kernel still works, and the rerun sends only the rows that did not finish.
    check = kernel.run(
        "kept = [i for i, a in enumerate(r) if a.finish_reason == 'stop']\n"
        "print('kept', len(kept), kept == list(range(len(kept))))"
    )
    line = _printed(check)
    kept = int(line.split("kept", 1)[1].split()[0])
    assert 4 <= kept < total and "True" in line, line
    before = _chats(ollama_server)
    ollama_server.token_delay = 0.0
    rerun = kernel.run(
        "r2 = lm.batch(prompts, progress=False)\nprint('again', r2.counts, r2.cached)"
    )
    assert f"again {{'ok': {total}, 'error': 0, 'cancelled': 0}} {kept}" in _printed(rerun)
    assert _chats(ollama_server) - before == total - kept


def test_the_cancel_button_stops_a_running_batch(kernel, ollama_server):
    ollama_server.token_delay = 0.1
    total = 30
    buttons: list[str] = []
    clicked: list[float] = []

    def click_when_some_rows_are_done(msg: dict) -> None:
        if msg["msg_type"] == "comm_open":
            state = msg["content"]["data"].get("state", {})
            if state.get("_model_name") == "ButtonModel":
                buttons.append(msg["content"]["comm_id"])
        if buttons and not clicked and _chats(ollama_server) >= 6:
            clicked.append(time.monotonic())
            content = {
                "comm_id": buttons[0],
                "data": {"method": "custom", "content": {"event": "click"}},
            }
            kernel.client.shell_channel.send(kernel.client.session.msg("comm_msg", content))

    messages = kernel.run(
        "import localmind_jupyter as lm\n"
        f"r = lm.batch([f'row {{i}}' for i in range({total})], concurrency=2)\n"
        "print('counts', r.counts, r.cancelled)",
        timeout=60,
        on_message=click_when_some_rows_are_done,
    )
    returned = time.monotonic()
    assert clicked, "no Cancel button was shown"
    assert returned - clicked[0] < 4, "the click was not heard while the batch ran"
    assert not of_type(messages, "error")
    printed = _printed(messages)
    assert "True" in printed.split("counts", 1)[1], printed
    assert _chats(ollama_server) < total
