"""The answer log: real SQLite files in each test's LOCALMIND_HOME, written through the
backends' ``answer_sink`` exactly as the loader wires it; read back as the cache."""

from __future__ import annotations

import contextvars
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from localmind_jupyter.backends import ModelResponse, Usage
from localmind_jupyter.config import parse_config
from localmind_jupyter.core.answer_log import (
    AnswerLog,
    answer_log_for,
    answer_source,
    current_source,
    request_key,
)
from localmind_jupyter.core.model_loader import ModelLoader
from localmind_jupyter.errors import ConfigError, GenerationError, LocalMindError, OptionError
from localmind_jupyter.paths import log_path

from .scripted_backend import ScriptedBackend

REPO = Path(__file__).resolve().parent.parent


class Capital(BaseModel):
    capital: str
    population: int


def _logged(*script: Any) -> tuple[ScriptedBackend, AnswerLog]:
    log = AnswerLog(log_path())
    backend = ScriptedBackend()
    backend.script = list(script)
    backend.answer_sink = log.record
    return backend, log


def test_an_answer_is_logged_with_everything_and_served_back(isolated_home: Path) -> None:
    backend, log = _logged("Par", "is", Usage(7, 2, "stop"))
    with answer_source("magic"):
        answer = backend.generate(
            "capital?", "m", system="be brief", temperature=0, seed=7, options={"num_ctx": 64}
        )
    (row,) = log.entries()
    assert (row["source"], row["backend"], row["backend_type"], row["model"]) == (
        "magic",
        "scripted",
        "scripted",
        "m",
    )
    assert row["prompt"] == "capital?" and row["answer"] == "Paris"
    assert row["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "capital?"},
    ]
    assert row["options"]["seed"] == 7 and row["options"]["extra"] == {"num_ctx": 64}
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 2)
    assert row["duration"] is not None and row["time_to_first_token"] is not None
    assert row["finish_reason"] == "stop" and row["error"] is None and row["ok"]
    request = backend.build_request(
        "capital?", "m", system="be brief", temperature=0, seed=7, options={"num_ctx": 64}
    )
    assert row["key"] == request_key("scripted", request)
    cached = log.cached("scripted", request)
    assert cached is not None and cached.text == "Paris" and cached.prompt_tokens == 7
    assert cached.duration == answer.duration
    assert log.answered([row["key"], "f" * 64]) == {row["key"]}
    # Any other option is another request: not answered from the log.
    assert log.cached("scripted", backend.build_request("capital?", "m", seed=8)) is None
    assert log.cached("other", request) is None


def test_request_key_is_the_same_in_another_process_and_covers_every_option() -> None:
    backend = ScriptedBackend()
    base = {"system": "s", "temperature": 0.5, "seed": 1, "stop": ["\n"]}
    key = request_key("b", backend.build_request("p", "m", **base))
    code = textwrap.dedent(
        """
        from localmind_jupyter.core.answer_log import request_key
        from tests.scripted_backend import ScriptedBackend
        request = ScriptedBackend().build_request(
            "p", "m", system="s", temperature=0.5, seed=1, stop=["\\n"]
        )
        print(request_key("b", request))
        """
    )
    other = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == key and len(key) == 64
    changes: list[dict[str, Any]] = [
        {"system": "t"},
        {"temperature": 0.6},
        {"seed": 2},
        {"stop": ["x"]},
        {"max_tokens": 5},
        {"top_p": 0.9},
        {"json_mode": True},
        {"think": False},
        {"schema": Capital},
        {"options": {"num_ctx": 32}},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    ]
    keys = {request_key("b", backend.build_request("p", "m", **{**base, **c})) for c in changes}
    assert key not in keys and len(keys) == len(changes)
    assert request_key("c", backend.build_request("p", "m", **base)) != key
    assert request_key("b", backend.build_request("q", "m", **base)) != key
    assert request_key("b", backend.build_request("p", "n", **base)) != key


def test_a_cancelled_answer_is_logged_but_never_served() -> None:
    backend, log = _logged("one ", "two ", "three")
    stream = backend.generate_stream("count", "m")
    assert next(iter(stream)) == "one "
    stream.close()
    (row,) = log.entries()
    assert row["finish_reason"] == "cancelled" and row["answer"] == "one " and not row["ok"]
    request = backend.build_request("count", "m")
    assert log.cached("scripted", request) is None
    assert log.answered([request_key("scripted", request)]) == set()


def test_a_failed_answer_keeps_its_partial_text_and_is_never_served() -> None:
    backend, log = _logged("half an ", GenerationError("the server dropped the stream"))
    with pytest.raises(GenerationError):
        backend.generate("go", "m")
    (row,) = log.entries()
    assert row["answer"] == "half an " and row["finish_reason"] == "error"
    assert "dropped the stream" in row["error"] and not row["ok"]
    assert log.cached("scripted", backend.build_request("go", "m")) is None
    # The same request answered later is served (the newest success).
    backend.script = ["whole"]
    backend.generate("go", "m")
    cached = log.cached("scripted", backend.build_request("go", "m"))
    assert cached is not None and cached.text == "whole"


def test_a_schema_answer_comes_back_typed_and_an_invalid_one_is_not_served() -> None:
    backend, log = _logged('{"capital": "Paris", "population": 2}')
    backend.generate("france?", "m", schema=Capital)
    cached = log.cached("scripted", backend.build_request("france?", "m", schema=Capital))
    assert isinstance(cached, ModelResponse) and isinstance(cached.parsed, Capital)
    assert cached.parsed == Capital(capital="Paris", population=2)
    assert log.entries()[0]["parsed"] == {"capital": "Paris", "population": 2}
    backend.script = ['{"capital": 3}']
    with pytest.raises(GenerationError):
        backend.generate("spain?", "m", schema=Capital)
    row = log.entries()[0]
    assert row["error"] and not row["ok"] and row["answer"] == '{"capital": 3}'
    assert log.cached("scripted", backend.build_request("spain?", "m", schema=Capital)) is None


def test_entries_filter_by_search_and_model_newest_first() -> None:
    log = AnswerLog(log_path())
    for model, prompt, text in [
        ("m", "Ünïcode QUESTION", "first"),
        ("smollm:135m", "other", "ANSWER about Straße"),
        ("m", "third", "plain"),
    ]:
        backend = ScriptedBackend()
        backend.script = [text]
        backend.answer_sink = log.record
        backend.generate(prompt, model)
    assert [e["answer"] for e in log.entries()] == ["plain", "ANSWER about Straße", "first"]
    assert [e["answer"] for e in log.entries(limit=1)] == ["plain"]
    assert [e["prompt"] for e in log.entries(search="ünïcode question")] == ["Ünïcode QUESTION"]
    assert [e["answer"] for e in log.entries(search="straße")] == ["ANSWER about Straße"]
    assert [e["answer"] for e in log.entries(model="smollm:135m")] == ["ANSWER about Straße"]
    assert len(log.entries(model="scripted:m")) == 2
    assert log.entries(model="nope") == []
    for bad in (0, -1, "3", True):
        with pytest.raises(OptionError, match="limit must be a positive integer"):
            log.entries(limit=bad)


def test_reading_a_log_that_does_not_exist_creates_nothing(isolated_home: Path) -> None:
    log = AnswerLog(log_path())
    request = ScriptedBackend().build_request("p", "m")
    assert log.entries() == [] and log.cached("scripted", request) is None
    assert log.answered(["a"]) == set()
    assert not log_path().exists()


def test_the_source_follows_the_context_and_a_copied_context_into_threads() -> None:
    assert current_source() == "python"
    seen: dict[str, str] = {}
    with answer_source("batch"):
        assert current_source() == "batch"
        plain = threading.Thread(target=lambda: seen.update(plain=current_source()))
        context = contextvars.copy_context()
        copied = threading.Thread(
            target=lambda: context.run(lambda: seen.update(c=current_source()))
        )
        for thread in (plain, copied):
            thread.start()
            thread.join()
    assert seen == {"plain": "python", "c": "batch"} and current_source() == "python"
    with pytest.raises(OptionError, match="non-empty string"), answer_source(""):
        pass


def test_threads_of_one_process_share_one_log() -> None:
    log = AnswerLog(log_path())

    def work(n: int) -> None:
        for i in range(40):
            backend = ScriptedBackend()
            backend.script = [f"answer {n}-{i}"]
            backend.answer_sink = log.record
            backend.generate(f"prompt {n}-{i}", "m")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log.entries(limit=1000)) == 240


_WRITER = """
import sys, time
from pathlib import Path
from localmind_jupyter.core.answer_log import AnswerLog
from tests.scripted_backend import ScriptedBackend
name, go = sys.argv[1], Path(sys.argv[2])
log = AnswerLog(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
for i in range(200):
    backend = ScriptedBackend()
    backend.script = [f"answer {name} {i}"]
    log.record(backend, backend.build_request(f"{name} {i}", "m"),
               backend.generate(f"{name} {i}", "m"), None, source="batch")
print("done")
"""


def test_two_processes_write_the_same_log_at_once(tmp_path: Path) -> None:
    path, go = log_path(), tmp_path / "go"
    assert not path.exists()  # both writers race to create the fresh file too
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, name, str(go), str(path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    go.touch()
    outputs = [w.communicate(timeout=120) for w in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0 and out.strip() == "done", err
        assert "locked" not in err
    rows = AnswerLog(path).entries(limit=1000)
    assert len(rows) == 400 and {r["source"] for r in rows} == {"batch"}
    assert {r["answer"] for r in rows} == {f"answer {n} {i}" for n in "ab" for i in range(200)}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


_OPENER = """
import sys, time
from pathlib import Path
from localmind_jupyter.core._log_db import LogDatabase
go, db = Path(sys.argv[1]), LogDatabase(Path(sys.argv[2]))
while not go.exists():
    time.sleep(0.001)
db.run("opened", lambda conn: conn.execute("SELECT count(*) FROM answers"))
print("done")
"""


def test_processes_opening_a_fresh_log_at_once_all_get_in(tmp_path: Path) -> None:
    # Switching a fresh file to WAL is refused at once ("database is locked", no busy
    # timeout) to one of two processes that both read it first: the opener tries again.
    for round_ in range(6):
        go, path = tmp_path / f"go{round_}", tmp_path / f"log{round_}.db"
        openers = [
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, str(go), str(path)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        time.sleep(1.0)  # all six are waiting at the start line
        go.touch()
        for opener in openers:
            out, err = opener.communicate(timeout=120)
            assert opener.returncode == 0 and out.strip() == "done", err


def test_a_corrupt_log_costs_no_answer_and_says_how_to_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = log_path()
    path.write_bytes(b"this is not a database, just junk " * 200)
    backend, log = _logged("still ", "here")
    assert backend.generate("go", "m").text == "still here"
    assert str(path) in caplog.text and "move the file aside" in caplog.text
    (record,) = [r for r in caplog.records if "recording the answer failed" in r.message]
    assert record.levelname == "WARNING" and record.exc_info is None  # one line, no traceback
    with pytest.raises(LocalMindError) as info:
        log.entries()
    message = str(info.value)
    assert str(path) in message and "not a database" in message and "log: false" in message


def test_a_log_from_a_newer_version_is_refused_clearly() -> None:
    path = log_path()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(LocalMindError, match="schema version 99, newer"):
        AnswerLog(path).entries()


# --- the config key and the loader --------------------------------------------------------------
def _config(isolated_home: Path, text: str) -> Any:
    path = isolated_home / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return parse_config(path.read_text(), source=path)


def test_the_loader_logs_every_backend_and_creates_nothing_until_an_answer(
    isolated_home: Path, ollama_server: Any
) -> None:
    config = _config(
        isolated_home,
        f"""
        backends:
          ollama:
            settings: {{base_url: "{ollama_server.url}"}}
        """,
    )
    loader = ModelLoader(config)
    assert loader.answer_log is answer_log_for(config) and loader.answer_log is not None
    assert loader.get("ollama").answer_sink == loader.answer_log.record
    assert not log_path().exists()
    answer = loader.get("ollama").generate("hello log", "smollm:135m")
    (row,) = loader.answer_log.entries()
    assert row["backend_type"] == "ollama" and row["model"] == "smollm:135m"
    assert row["prompt"] == "hello log" and row["answer"] == answer.text
    assert row["completion_tokens"] == answer.completion_tokens and row["source"] == "python"
    assert log_path().stat().st_mode & 0o077 == 0  # private to the user


def test_log_false_leaves_no_log_file(isolated_home: Path, ollama_server: Any) -> None:
    config = _config(
        isolated_home,
        f"""
        log: false
        backends:
          ollama:
            settings: {{base_url: "{ollama_server.url}"}}
        """,
    )
    loader = ModelLoader(config)
    assert config.log is False and loader.answer_log is None
    assert loader.get("ollama").answer_sink is None
    loader.get("ollama").generate("hello", "smollm:135m")
    assert not log_path().exists() and list(isolated_home.iterdir()) == [
        isolated_home / "config.yaml"
    ]


def test_a_bad_log_value_is_a_config_error(isolated_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"config.yaml, line 2: log: .*valid boolean"):
        _config(isolated_home, "\nlog: sometimes\n")
    with pytest.raises(ConfigError, match="did you mean 'log'"):
        _config(isolated_home, "logg: false\n")


def test_a_configured_key_never_reaches_the_log_file(
    isolated_home: Path, openai_server: Any
) -> None:
    import uuid

    key = f"sk-log-{uuid.uuid4().hex}"
    openai_server.api_key = key
    config = _config(
        isolated_home,
        f"""
        backends:
          openai:
            type: openai
            settings: {{base_url: "{openai_server.base_url}", api_key: "{key}"}}
        """,
    )
    backend = ModelLoader(config).get("openai")
    quoted = backend.generate(f"my key is {key} and a url http://bob:{key}x@h/", "gpt-test")
    assert key in quoted.text  # the server really echoes it (the user gets their answer)
    openai_server.fail_status = 500
    openai_server.echo_credentials = True
    with pytest.raises(LocalMindError):
        backend.generate("fail please", "gpt-test")
    rows = AnswerLog(log_path()).entries()
    assert len(rows) == 2 and rows[0]["error"] and "****" in rows[1]["answer"]
    raw = b"".join(
        Path(f"{log_path()}{suffix}").read_bytes()
        for suffix in ("", "-wal", "-shm")
        if Path(f"{log_path()}{suffix}").exists()
    )
    assert key.encode() not in raw and key[7:].encode() not in raw


def test_import_and_loader_construction_do_not_import_sqlite() -> None:
    code = (
        "import sys, localmind_jupyter\n"
        "from localmind_jupyter.core.model_loader import ModelLoader\n"
        "loader = ModelLoader()\n"
        "assert loader.answer_log is not None\n"
        "print('sqlite3' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_a_log_of_an_earlier_home_closes_its_file_and_reopens_when_used(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config("log: true\n")
    first = answer_log_for(config)
    assert first is not None and answer_log_for(config) is first  # one per file
    backend = ScriptedBackend()
    backend.script = ["a"]
    backend.answer_sink = first.record
    backend.generate("one", "m")
    monkeypatch.setenv("LOCALMIND_HOME", str(tmp_path / "elsewhere"))
    second = answer_log_for(config)
    assert second is not None and second is not first
    assert first._db._conn is None  # closed: no descriptors held for an old home
    backend.generate("two", "m")  # still usable
    assert [e["prompt"] for e in first.entries()] == ["two", "one"]
    assert second.entries() == []
