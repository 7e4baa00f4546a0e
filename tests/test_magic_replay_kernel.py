"""Replay in a real kernel: ``%localmind replay record``, cells against the Ollama test server,
the server stopped, ``replay play`` gives the same answers with "replayed" in the footer and
the metadata; ``LOCALMIND_REPLAY=play`` at kernel start; the file is named after the notebook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ollama_config import write_ollama_config
from tests.servers.ollama_server import OllamaTestServer
from tests.test_magic_kernel import Kernel, answer_messages, of_type

pytest.importorskip("jupyter_client")

BOTH = "ollama:smollm:135m ollama:qwen2.5:0.5b"


def shown(messages: list[dict]) -> list[str]:
    return [
        m["content"]["data"].get("text/plain", "")
        for m in of_type(messages, "display_data", "update_display_data")
    ]


def final_answer(messages: list[dict]) -> dict:
    return answer_messages(messages)[-1]["content"]


@pytest.fixture
def lesson(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("LOCALMIND_REPLAY", "LOCALMIND_REPLAY_FILE", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCALMIND_REPLAY_PACE", "0")
    folder = tmp_path / "course"
    folder.mkdir()
    return folder / "lesson.ipynb"


configure = write_ollama_config


def test_record_a_lesson_then_play_it_with_the_server_stopped(
    lesson: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = OllamaTestServer()
    server.start()
    configure(isolated_home, server.url)
    server.reply_pieces = ["Photosynthesis ", "turns ", "light ", "into ", "sugar."]
    k = Kernel(isolated_home)
    try:
        # The notebook's path, as JupyterLab sets it: the recording goes next to it.
        k.run(f"__session__ = {str(lesson)!r}\n%load_ext localmind_jupyter")
        said = "".join(shown(k.run("%localmind replay record")))
        assert "replay: record" in said and str(lesson.with_suffix("")) in said
        live = k.run("%%localmind\nWhat is photosynthesis?")
        assert not of_type(live, "error")
        live_final = final_answer(live)
        compared = k.run(f"%%localmind {BOTH} --no-history\nName a plant.")
        assert not of_type(compared, "error")
        recording = lesson.with_name("lesson.localmind.jsonl")
        lines = recording.read_text().splitlines()
        assert json.loads(lines[0])["localmind_replay"] == 1 and len(lines) == 4
        sent = len(server.requests)
        server.stop()

        k.run("%localmind reset")  # the lesson again from its start: the same chat history
        said = "".join(shown(k.run("%localmind replay play")))
        assert "replay: play" in said and "3 recorded answers" in said
        played = k.run("%%localmind\nWhat is photosynthesis?")
        assert not of_type(played, "error")
        final = final_answer(played)
        assert final["data"]["text/plain"] == live_final["data"]["text/plain"]
        assert final["data"]["text/plain"] == "Photosynthesis turns light into sugar."
        assert final["metadata"]["localmind"]["replayed"] is True
        assert "replayed" not in live_final["metadata"]["localmind"]
        footer = shown(played)[-1]
        assert footer.startswith("ollama:smollm:135m ·") and footer.endswith("· replayed")

        # A comparison replays too, each column's footer saying so.
        again = k.run(f"%%localmind {BOTH} --no-history\nName a plant.")
        assert not of_type(again, "error")
        columns = final_answer(again)["data"]["text/plain"]
        assert columns.count("· replayed]") == 2, columns
        assert shown(again)[-1].count("stop · replayed") == 2, "the summary table"

        # Never recorded: one message naming the closest prompt; nothing was sent.
        unknown = k.run("%%localmind --no-history\nWhat is photosynthesis, really?")
        message = "".join(shown(unknown))
        assert "no answer to this request" in message and "not sent" in message
        assert "'What is photosynthesis?'" in message
        assert len(server.requests) == sent
        assert "replayed" in "".join(shown(k.run("%localmind stats")))
    finally:
        k.stop()
        server.stop()

    # A fresh kernel with LOCALMIND_REPLAY=play and the notebook's name from Jupyter's env.
    monkeypatch.setenv("LOCALMIND_REPLAY", "play")
    monkeypatch.setenv("JPY_SESSION_NAME", str(lesson))
    k = Kernel(isolated_home)
    try:
        k.run("%load_ext localmind_jupyter")
        played = k.run("%%localmind\nWhat is photosynthesis?")
        assert not of_type(played, "error")
        assert (
            final_answer(played)["data"]["text/plain"] == "Photosynthesis turns light into sugar."
        )
        assert shown(played)[-1].endswith("· replayed")
        said = "".join(shown(k.run("%localmind replay")))
        assert "replay: play" in said and "lesson.localmind.jsonl (next to the notebook" in said
    finally:
        k.stop()


def test_replay_command_mistakes_are_one_message(
    lesson: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(isolated_home, "http://127.0.0.1:9")
    k = Kernel(isolated_home)
    try:
        k.run(f"__session__ = {str(lesson)!r}\n%load_ext localmind_jupyter")
        missing = k.run("%localmind replay play")
        assert not of_type(missing, "error")
        text = "".join(shown(missing))
        assert "no replay recording at" in text and "lesson.localmind.jsonl" in text
        assert "usage: %localmind replay" in "".join(shown(k.run("%localmind replay rewind")))
        said = "".join(shown(k.run("%localmind replay")))
        assert "replay: off" in said and "no file yet" in said
    finally:
        k.stop()
