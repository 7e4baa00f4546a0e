"""Replay against the Ollama loopback server: record, stop the server, play the same answers
(text, ``parsed``, "replayed"), an unknown prompt refused and not sent, damaged files."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import localmind_jupyter as lm
from localmind_jupyter.core import replay
from localmind_jupyter.core.model_loader import ModelLoader
from localmind_jupyter.errors import BackendUnavailable, OptionError
from localmind_jupyter.session import reset_session
from tests.conftest import free_port
from tests.ollama_config import write_ollama_config
from tests.servers.ollama_server import FakeModel, OllamaTestServer, split_words

ANSWER = '{"capital": "Paris", "population_millions": 68.2}'


class City(BaseModel):
    capital: str
    population_millions: float


def reply(messages: list[dict]) -> list[str]:
    prompt = messages[-1]["content"]
    if "json" in prompt:
        return split_words(ANSWER)
    return split_words(f"You asked: {prompt}. The answer is forty two.")


@pytest.fixture(autouse=True)
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with replay off, pace 0, in its own folder (the default file)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCALMIND_REPLAY_PACE", "0")
    for name in ("LOCALMIND_REPLAY", "LOCALMIND_REPLAY_FILE", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    replay.reset_state()
    yield
    replay.reset_state()
    reset_session()


configure = write_ollama_config


def chats(server: OllamaTestServer) -> list[dict]:
    return [body for _method, path, body in server.requests if path == "/api/chat"]


def test_record_then_play_with_the_server_stopped(isolated_home: Path, tmp_path: Path) -> None:
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply)]) as srv:
        configure(isolated_home, srv.url)
        replay.set_mode("record")
        backend = ModelLoader().get("ollama")
        live = backend.generate("What is six times seven?", "smollm:135m", temperature=0)
        typed = backend.generate("France, as json", "smollm:135m", schema=City)
        assert len(chats(srv)) == 2 and not live.replayed
    file = tmp_path / "localmind-replay.jsonl"
    lines = file.read_text().splitlines()
    assert json.loads(lines[0])["localmind_replay"] == 1 and len(lines) == 3
    assert json.loads(lines[1])["answer"] == live.text

    # The server is gone: play answers both at once, from the file.
    replay.set_mode("play")
    backend = ModelLoader().get("ollama")
    again = backend.generate("What is six times seven?", "smollm:135m", temperature=0)
    assert again.text == live.text and again.replayed
    assert again.completion_tokens == live.completion_tokens
    assert again.finish_reason == "stop" and again.to_dict()["replayed"] is True
    parsed = backend.generate("France, as json", "smollm:135m", schema=City)
    assert parsed.parsed == typed.parsed == City(capital="Paris", population_millions=68.2)

    # Never recorded: a clear message naming the closest recorded prompt; nothing is sent.
    with pytest.raises(replay.NotRecorded) as caught:
        backend.generate("What is six times eight?", "smollm:135m", temperature=0)
    message = str(caught.value)
    assert "'What is six times seven?'" in message and "not sent" in message
    assert "%localmind replay record" in message
    # The same prompt with another option is another request.
    with pytest.raises(replay.NotRecorded, match="same prompt was recorded"):
        backend.generate("What is six times seven?", "smollm:135m", temperature=0.5)

    # Off again: the request goes to the (stopped) server and fails as it would.
    replay.set_mode("off")
    with pytest.raises(BackendUnavailable):
        backend.generate("What is six times seven?", "smollm:135m", temperature=0)


def test_an_unknown_prompt_is_not_sent_to_a_running_server(isolated_home: Path) -> None:
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply)]) as srv:
        configure(isolated_home, srv.url)
        replay.set_mode("record")
        backend = ModelLoader().get("ollama")
        backend.generate("hello there", "smollm:135m")
        replay.set_mode("play")
        with pytest.raises(replay.NotRecorded, match="closest recorded prompt: 'hello there'"):
            backend.generate("hello world", "smollm:135m")
        assert len(chats(srv)) == 1


def test_a_batch_records_and_plays_through_the_same_path(isolated_home: Path) -> None:
    prompts = ["first row", "second row", "third row"]
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply)]) as srv:
        configure(isolated_home, srv.url, "log: false\n")
        replay.set_mode("record")
        live = lm.batch(prompts, progress=False)
        assert live.ok
    replay.set_mode("play")
    reset_session()
    played = lm.batch(prompts, progress=False)
    assert played.texts == live.texts and all(r.replayed for r in played)


def test_play_streams_at_the_pace_in_several_pieces(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply)]) as srv:
        configure(isolated_home, srv.url)
        replay.set_mode("record")
        live = ModelLoader().get("ollama").generate("pace me", "smollm:135m")
    replay.set_mode("play")
    monkeypatch.setenv("LOCALMIND_REPLAY_PACE", "400")  # characters per second
    backend = ModelLoader().get("ollama")
    start = time.perf_counter()
    stream = backend.generate_stream("pace me", "smollm:135m")
    pieces = list(stream)
    elapsed = time.perf_counter() - start
    assert "".join(pieces) == live.text and len(pieces) >= 5
    assert elapsed >= 0.8 * len(live.text) / 400
    monkeypatch.setenv("LOCALMIND_REPLAY_PACE", "0")
    assert len(list(backend.generate_stream("pace me", "smollm:135m"))) == 1
    monkeypatch.setenv("LOCALMIND_REPLAY_PACE", "fast")
    with pytest.raises(OptionError, match="LOCALMIND_REPLAY_PACE"):
        backend.generate("pace me", "smollm:135m")


def test_a_corrupt_line_is_skipped_with_its_number_and_the_rest_plays(
    isolated_home: Path, tmp_path: Path
) -> None:
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply)]) as srv:
        configure(isolated_home, srv.url)
        replay.set_mode("record")
        backend = ModelLoader().get("ollama")
        one = backend.generate("one", "smollm:135m")
        backend.generate("two", "smollm:135m")
    file = tmp_path / "localmind-replay.jsonl"
    lines = file.read_text().splitlines()
    lines[2] = lines[2][:40]  # "two" cut short, as by a bad merge
    file.write_text("\n".join(lines) + "\n")
    with pytest.warns(replay.ReplayWarning, match="skipped line 3 of .*localmind-replay.jsonl"):
        replay.set_mode("play")
    backend = ModelLoader().get("ollama")
    assert backend.generate("one", "smollm:135m").text == one.text
    with pytest.raises(replay.NotRecorded):
        backend.generate("two", "smollm:135m")


def test_a_newer_header_and_a_missing_file_are_refused_clearly(
    isolated_home: Path, tmp_path: Path
) -> None:
    configure(isolated_home, f"http://127.0.0.1:{free_port()}")
    missing = tmp_path / "nowhere.localmind.jsonl"
    with pytest.raises(replay.ReplayError, match=r"no replay recording at .*nowhere") as caught:
        replay.set_mode("play", missing)
    assert "%localmind replay record" in str(caught.value)
    newer = tmp_path / "newer.jsonl"
    newer.write_text('{"localmind_replay": 2, "created": "2030-01-01"}\n{"key": "k"}\n')
    with pytest.raises(replay.ReplayError, match=r"format 2, newer than .* upgrade"):
        replay.set_mode("play", newer)
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"key": "k"}\n')
    with pytest.raises(replay.ReplayError, match="no replay recording: its first line"):
        replay.set_mode("play", plain)
    assert replay.replay_state().mode == "off"  # a refused switch changes nothing
    with pytest.raises(OptionError, match="record, play"):
        replay.set_mode("fast-forward")


def test_an_unwritable_file_is_refused_at_once_and_warned_while_answering(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(replay.ReplayError, match=r"cannot record into .*a-file/rec\.jsonl"):
        replay.set_mode("record", blocker / "rec.jsonl")
    # Set from the environment, the failure shows while answering; the answer still comes.
    monkeypatch.setenv("LOCALMIND_REPLAY", "record")
    monkeypatch.setenv("LOCALMIND_REPLAY_FILE", str(blocker / "rec.jsonl"))
    replay.reset_state()
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply)]) as srv:
        configure(isolated_home, srv.url)
        backend = ModelLoader().get("ollama")
        with pytest.warns(replay.ReplayWarning, match="could not record the answer in"):
            answer = backend.generate("still answered?", "smollm:135m")
    assert answer.text.startswith("You asked: still answered?")


def test_secrets_never_reach_the_recording(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LESSON_API_KEY", "sk-lesson-secret-98765")
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply)]) as srv:
        configure(isolated_home, srv.url)
        replay.set_mode("record")
        ModelLoader().get("ollama").generate("my key is sk-lesson-secret-98765", "smollm:135m")
    text = (tmp_path / "localmind-replay.jsonl").read_text()
    assert "sk-lesson-secret-98765" not in text and "****" in text


def test_the_file_is_per_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = tmp_path / "course" / "lesson.ipynb"
    assert replay.recording_path_for(notebook) == tmp_path / "course" / "lesson.localmind.jsonl"
    state = replay.replay_state()
    assert state.where() == (tmp_path / "localmind-replay.jsonl", state.where()[1])
    replay.set_notebook(str(notebook))
    assert state.where() == (tmp_path / "course" / "lesson.localmind.jsonl", "next to the notebook")
    monkeypatch.setenv("LOCALMIND_REPLAY_FILE", str(tmp_path / "shared.jsonl"))
    assert state.path == tmp_path / "shared.jsonl"


def test_rows_a_batch_resumes_from_the_log_are_recorded_too(isolated_home: Path) -> None:
    prompts = ["alpha", "beta"]
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply)]) as srv:
        configure(isolated_home, srv.url)
        first = lm.batch(prompts, progress=False)  # into the answer log, before recording
        replay.set_mode("record")
        resumed = lm.batch(prompts, progress=False)
        assert resumed.cached == 2 and len(chats(srv)) == 2  # from the log, not sent again
    replay.set_mode("play")
    reset_session()
    played = lm.batch(prompts, progress=False)
    assert played.texts == first.texts and all(r.replayed for r in played)


def test_thinking_replays_and_a_played_answer_can_be_stopped(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thinker = FakeModel("qwen3:0.6b", family="qwen3", capabilities=("completion", "thinking"))
    with OllamaTestServer([FakeModel("smollm:135m", reply=reply), thinker]) as srv:
        configure(isolated_home, srv.url)
        replay.set_mode("record")
        backend = ModelLoader().get("ollama")
        live = backend.generate("think about it", "qwen3:0.6b", think=True)
        long = backend.generate("a long answer " * 20, "smollm:135m")
    assert live.thinking
    replay.set_mode("play")
    backend = ModelLoader().get("ollama")
    again = backend.generate("think about it", "qwen3:0.6b", think=True)
    assert (again.text, again.thinking) == (live.text, live.thinking) and again.replayed
    monkeypatch.setenv("LOCALMIND_REPLAY_PACE", "100")
    stream = backend.generate_stream("a long answer " * 20, "smollm:135m")
    read = [next(iter(stream)), next(iter(stream))]
    stream.close()  # the learner stops it: the partial answer is kept, marked cancelled
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
    assert stream.response.text == "".join(read) and len(read[0]) < len(long.text)
