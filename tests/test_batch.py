"""``localmind_jupyter.batch`` against the Ollama loopback server: order, concurrency,
per-row errors, DataFrames in and out, cancel, resume from the answer log, bad input."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import localmind_jupyter as lm
from localmind_jupyter.errors import OptionError
from localmind_jupyter.session import get_session, reset_session
from tests.ollama_config import write_ollama_config
from tests.servers.ollama_server import FakeModel, OllamaTestServer

pd = pytest.importorskip("pandas")


def _last_user(messages: list[dict[str, Any]]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


class Recorder:
    """The fake model's reply: ``"<prompt> done"`` in as many pieces as the prompt asks for
    (``pieces=N`` in it), and when each request reached the model."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[tuple[float, str]] = []

    def __call__(self, messages: list[dict[str, Any]]) -> list[str]:
        prompt = _last_user(messages)
        with self.lock:
            self.started.append((time.perf_counter(), prompt))
        wanted = re.search(r"pieces=(\d+)", prompt)
        count = int(wanted.group(1)) if wanted else 1
        return [f"{prompt} "] + ["x "] * (count - 2) + ["done"] if count > 1 else [prompt]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(isolated_home: Path, recorder: Recorder) -> Iterator[OllamaTestServer]:
    """An Ollama server as the kernel session's default model (as a notebook has it)."""
    with OllamaTestServer(models=[FakeModel("smollm:135m", reply=recorder)]) as srv:
        _configure(isolated_home, srv)
        yield srv
    reset_session()


def _configure(home: Path, srv: OllamaTestServer, extra: str = "") -> None:
    write_ollama_config(home, srv.url, extra)
    reset_session()


def _chats(srv: OllamaTestServer) -> list[str]:
    return [_last_user(body["messages"]) for _, path, body in srv.requests if path == "/api/chat"]


def test_answers_come_back_in_input_order_whatever_finishes_first(server, recorder):
    server.token_delay = 0.03
    prompts = [f"row {i} pieces={23 - 3 * i}" for i in range(8)]  # the last row is the shortest
    backend = get_session().loader.get("ollama")
    finished: list[str] = []
    logged = backend.answer_sink
    assert logged is not None

    def sink(*args: Any) -> None:
        finished.append(args[1].prompt)
        logged(*args)

    backend.answer_sink = sink
    result = lm.batch(prompts, concurrency=8, progress=False)
    assert len(result) == 8 and result.ok and not result.cancelled
    assert result.texts == [f"{p} " + "x " * (21 - 3 * i) + "done" for i, p in enumerate(prompts)]
    assert [r.finish_reason for r in result] == ["stop"] * 8
    # The later (shorter) rows really finished first: row 7 needs 2 pieces, row 0 needs 23
    # (0.6 s more). Which row ends last is left open: on a loaded machine a worker's first
    # request can start late.
    assert finished.index(prompts[7]) < finished.index(prompts[0])
    assert finished[0] != prompts[0]
    assert result.errors == {} and result.counts == {"ok": 8, "error": 0, "cancelled": 0}


def test_concurrency_sends_that_many_requests_at_once_and_no_more(server, recorder):
    server.token_delay = 0.05  # each answer takes about 0.4 s
    prompts = [f"row {i} pieces=8" for i in range(8)]
    start = time.perf_counter()
    result = lm.batch(prompts, concurrency=4, progress=False)
    wall = time.perf_counter() - start
    assert result.ok
    starts = sorted(t - start for t, _ in recorder.started)
    assert len(starts) == 8
    assert starts[3] - starts[0] < 0.25, f"the first four did not start together: {starts}"
    assert starts[4] - starts[0] > 0.3, f"a fifth started before one of four ended: {starts}"
    assert wall < 1.6, f"two waves of 0.4 s took {wall:.2f} s"


def test_the_default_concurrency_comes_from_the_backend_type_and_the_config(
    server, recorder, isolated_home
):
    server.token_delay = 0.05
    lm.batch([f"r{i} pieces=6" for i in range(4)], progress=False)
    starts = sorted(t for t, _ in recorder.started)
    assert starts[3] - starts[0] < 0.2, "Ollama's default (4 at once) was not used"
    _configure(isolated_home, server, "    concurrency: 1\n")
    recorder.started.clear()
    lm.batch([f"s{i} pieces=6" for i in range(3)], progress=False)
    starts = sorted(t for t, _ in recorder.started)
    assert starts[1] - starts[0] > 0.2, "backends.ollama.concurrency: 1 was not honoured"


def test_dataframe_in_and_out_with_a_template(server):
    frame = pd.DataFrame(
        {"review": ["great {value}", "awful"], "stars": [5, 1], "unused": [None, 3.5]},
        index=pd.Index(["r1", "r2"], name="id"),
    )
    result = lm.batch(frame, template="Stars {stars}: {review}", progress=False)
    assert result.texts == ["Stars 5: great {value}", "Stars 1: awful"], "filled once, not twice"
    out = result.to_pandas()
    assert list(out.index) == ["r1", "r2"] and out.index.name == "id"
    assert list(out.columns) == [
        "text",
        "finish_reason",
        "error",
        "prompt_tokens",
        "completion_tokens",
        "duration",
    ]
    assert out.loc["r2", "text"] == "Stars 1: awful"
    assert str(out["completion_tokens"].dtype) == "Int64" and out["error"].isna().all()
    frame["answer"] = result.texts  # lines up with the frame's own rows


def test_a_series_keeps_its_index(server):
    series = pd.Series(["one", "two"], index=[10, 20])
    out = lm.batch(series, progress=False).to_pandas()
    assert list(out.index) == [10, 20] and list(out["text"]) == ["one", "two"]


@pytest.mark.parametrize(
    ("prompts", "kwargs", "message"),
    [
        ([], {}, "the batch is empty"),
        (iter(()), {}, "the batch is empty"),
        ("just one string", {}, "pass a list of prompts"),
        (["ok", 3, "fine"], {}, "row 1 is int 3, not a string"),
        (["ok", None], {}, "row 1 is NoneType None, not a string"),
        (["a"], {"concurrency": 0}, "concurrency must be at least 1, got 0"),
        (["a"], {"concurrency": 2.5}, "concurrency must be a whole number"),
        (["a"], {"concurrency": True}, "concurrency must be a whole number"),
        (["a"], {"temperature": 7}, "temperature must be between 0 and 2"),
        (["a"], {"temprature": 0}, "unknown option(s) temprature"),
        (["a"], {"template": "x {y}"}, "template= fills a DataFrame's columns"),
        (["a"], {"resume": "yes"}, "resume must be True or False"),
        (["a"], {"progress": "bar"}, "progress must be True, False or a function"),
        (["a"], {"model": 3}, "model must be a 'backend:model' string or None"),
        (["a"], {"retry": "many"}, "retry max_attempts must be a whole number"),
    ],
)
def test_bad_input_is_one_clear_error_before_any_request(server, prompts, kwargs, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        lm.batch(prompts, **{"progress": False, **kwargs})
    assert _chats(server) == []


def test_bad_dataframe_input_names_the_columns(server):
    frame = pd.DataFrame({"review": ["a", "b"], "stars": [1, 2]})
    with pytest.raises(OptionError, match=r"needs template=.*columns: review, stars"):
        lm.batch(frame, progress=False)
    with pytest.raises(OptionError, match=r"\{revew\}, which the DataFrame has no column for; "):
        lm.batch(frame, template="Rate {revew} ({stars})", progress=False)
    with pytest.raises(OptionError, match="columns: review, stars"):
        lm.batch(frame, template="Rate {revew}", progress=False)
    with pytest.raises(OptionError, match="names no column"):
        lm.batch(frame, template="no placeholders here", progress=False)
    with pytest.raises(OptionError, match="the DataFrame has no rows"):
        lm.batch(frame.iloc[:0], template="{review}", progress=False)
    with pytest.raises(OptionError, match=r"row 1 \(index 'b'\) is float nan, not a string"):
        lm.batch(pd.Series(["x", float("nan")], index=["a", "b"]), progress=False)
    assert _chats(server) == []


def test_progress_reports_counts_and_finishes_at_the_total(server):
    server.token_delay = 0.01
    seen: list[Any] = []
    result = lm.batch([f"p{i} pieces=4" for i in range(10)], concurrency=2, progress=seen.append)
    assert result.ok
    assert seen[0].done == 0 and seen[0].total == 10
    assert [p.done for p in seen] == sorted(p.done for p in seen), "progress went backwards"
    last = seen[-1]
    assert last.finished and last.done == last.total == 10 and last.errors == 0
    assert last.rate and last.rate > 0 and "10/10 rows" in last.line()


def test_cancel_keeps_finished_rows_and_stops_the_rest(server):
    server.token_delay = 0.05
    cancel_after = 3
    holder: dict[str, Any] = {}

    def on_progress(progress: Any) -> None:
        if progress.done >= cancel_after and "bar" in holder:
            holder["bar"].cancel()  # what the Cancel button does

    from localmind_jupyter.widgets.batch_progress import BatchProgressBar

    cancel = threading.Event()
    holder["bar"] = BatchProgressBar(12, "test", cancel=cancel, show=False)
    from localmind_jupyter.core.batch import prepare_inputs, run_batch
    from localmind_jupyter.session import get_session

    backend, model = get_session().resolve(None, None)
    start = time.perf_counter()
    result = run_batch(
        backend,
        model,
        prepare_inputs([f"row {i} pieces=6" for i in range(12)]),
        {},
        concurrency=2,
        on_progress=on_progress,
        cancel=cancel,
    )
    assert time.perf_counter() - start < 3
    assert result.cancelled
    finished = [r for r in result if r.finish_reason == "stop"]
    assert cancel_after <= len(finished) < 12
    assert all(r.text.endswith("done") for r in finished)
    assert result[-1].finish_reason == "cancelled" and result[-1].text == ""
    assert "interrupted" in repr(result) and holder["bar"].cancel_button.disabled
    assert len(_chats(server)) < 12, "rows after the cancel were still sent"


def test_a_rerun_of_a_finished_batch_sends_nothing_and_answers_the_same(server):
    prompts = [f"row {i}" for i in range(20)]
    first = lm.batch(prompts, progress=False)
    assert len(_chats(server)) == 20
    start = time.perf_counter()
    again = lm.batch(prompts, progress=False)
    took = time.perf_counter() - start
    assert len(_chats(server)) == 20, "the rerun sent requests"
    assert again.texts == first.texts and again.cached == 20 and again.ok
    assert took < 0.5, f"a rerun from the log took {took:.2f} s"
    fresh = lm.batch(prompts, progress=False, resume=False)
    assert len(_chats(server)) == 40 and fresh.cached == 0
    changed = lm.batch(prompts, progress=False, temperature=0.5)
    assert len(_chats(server)) == 60 and changed.cached == 0, "other options, other answers"


def test_a_rerun_after_a_cancel_sends_only_the_rows_not_finished(server):
    server.token_delay = 0.03
    prompts = [f"row {i} pieces=4" for i in range(10)]
    cancel = threading.Event()

    def stop_after_four(progress: Any) -> None:
        if progress.done >= 4:
            cancel.set()

    from localmind_jupyter.core.batch import prepare_inputs, run_batch
    from localmind_jupyter.session import get_session

    session = get_session()
    backend, model = session.resolve(None, None)
    partial = run_batch(
        backend,
        model,
        prepare_inputs(prompts),
        {},
        concurrency=1,
        on_progress=stop_after_four,
        cancel=cancel,
        log=session.loader.answer_log,
    )
    kept = [i for i, r in enumerate(partial) if r.finish_reason == "stop"]
    assert partial.cancelled and 4 <= len(kept) < 10
    sent_before = len(_chats(server))
    rerun = lm.batch(prompts, progress=False)
    resent = _chats(server)[sent_before:]
    assert sorted(resent) == sorted(prompts[i] for i in range(10) if i not in kept)
    assert rerun.ok and rerun.cached == len(kept)
    assert rerun.texts[: len(kept)] == partial.texts[: len(kept)]


def test_with_logging_off_resume_does_nothing(server, isolated_home):
    (isolated_home / "config.yaml").write_text(
        (isolated_home / "config.yaml").read_text() + "log: false\n"
    )
    reset_session()
    lm.batch(["a", "b"], progress=False)
    again = lm.batch(["a", "b"], progress=False)
    assert len(_chats(server)) == 4 and again.cached == 0 and not again.resumable
    assert not (isolated_home / "log.db").exists()


def test_the_widget_shows_the_final_counts(server, monkeypatch):
    import localmind_jupyter.python_api as api
    import localmind_jupyter.widgets.batch_progress as widget

    shown: list[widget.BatchProgressBar] = []

    class Recorded(widget.BatchProgressBar):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "show": False})
            shown.append(self)

    server.fault_for_prompt("bad", "status 400")  # not worth a retry: fails at once
    monkeypatch.setattr(widget, "BatchProgressBar", Recorded)
    monkeypatch.setattr(api, "_in_kernel", lambda: True)
    result = lm.batch(["a fine", "bad", "c fine", "bad again"])
    (bar,) = shown
    assert bar.done == bar.bar.max == 4 and bar.errors == 2
    assert bar.bar.bar_style == "danger" and "2 errors" in bar.text.value
    assert "fine" not in bar.text.value, "model output reached the bar"
    assert result.counts == {"ok": 2, "error": 2, "cancelled": 0}
    bar.cancel_button.click()  # after the end: nothing left to stop, the button is off
    assert bar.cancel_button.disabled
    with pytest.raises(OptionError, match="temperature"):
        lm.batch(["a"], temperature=9)
    assert len(shown) == 1, "a bar was shown for a batch refused before it began"


def test_import_stays_light_until_a_batch_runs():
    """``import localmind_jupyter`` (and naming ``batch``) imports no pandas, widgets or SQLite."""
    import subprocess
    import sys

    code = (
        "import sys, localmind_jupyter as lm\n"
        "lm.batch, lm.BatchResult\n"
        "print(sorted(m for m in ('pandas', 'ipywidgets', 'sqlite3', 'pydantic', 'httpx')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_row_is_logged_as_coming_from_a_batch(server):
    lm.batch(["one", "two", "three"], concurrency=3, progress=False)
    log = get_session().loader.answer_log
    assert log is not None
    entries = log.entries()
    assert sorted(e["prompt"] for e in entries) == ["one", "three", "two"]
    assert {e["source"] for e in entries} == {"batch"}, "a worker thread lost the context"


def test_a_batch_stops_sending_when_every_row_fails_for_the_whole_backend(server):
    """An unknown model (a 404 on every row) fails the same way 5,000 times: after a few rows
    in a row the rest are not sent, and say why, so a rerun after the fix sends them."""
    prompts = [f"row {i}" for i in range(40)]
    result = lm.batch(prompts, model="ollama:no-such-model:1b", progress=False)
    assert len(result) == 40 and not result.ok
    assert len(_chats(server)) <= 3 + 4, "it kept sending rows that could only fail"
    assert all(r.finish_reason == "error" for r in result)
    last = result[-1].error or ""
    assert last.startswith("not sent: the batch stopped after 3 rows in a row failed")
    assert "no-such-model" in last


def test_a_batch_against_a_server_that_is_down_ends_in_seconds(isolated_home):
    from tests.conftest import free_port

    (isolated_home / "config.yaml").write_text(
        "default_model: ollama:smollm:135m\n"
        f"backends:\n  ollama:\n    settings: {{base_url: 'http://127.0.0.1:{free_port()}'}}\n"
    )
    reset_session()
    try:
        start = time.perf_counter()
        result = lm.batch([f"row {i}" for i in range(200)], progress=False)
        took = time.perf_counter() - start
    finally:
        reset_session()
    assert took < 20, f"a batch against a dead server took {took:.0f} s"
    assert all(r.finish_reason == "error" for r in result)
    assert "not sent" in (result[-1].error or "") and "not running" in (result[0].error or "")
