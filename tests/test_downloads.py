"""Ollama pulls as overall progress, and the background DownloadManager."""

from __future__ import annotations

import threading
import time

import pytest

from localmind_jupyter.backends.base import DownloadProgress
from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.backends.openai import OpenAIBackend
from localmind_jupyter.core.downloads import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    DownloadManager,
    DownloadStatus,
)
from localmind_jupyter.errors import DownloadError
from tests.servers.ollama_server import DEFAULT_LIBRARY

TINY = "tinyllama:latest"
TINY_TOTAL = sum(size for _digest, size in DEFAULT_LIBRARY[TINY])
MINILM = "all-minilm:latest"


def pulls(server) -> int:
    return sum(1 for _m, path, _b in server.requests if path == "/api/pull")


def manager_for(server, **kwargs) -> DownloadManager:
    backend = OllamaBackend({"base_url": server.url})
    return DownloadManager(lambda name: backend, **kwargs)


# --- the backend's own download_model -------------------------------------------------------


def test_pull_reports_overall_bytes_and_phases(ollama_server):
    events: list[DownloadProgress] = []
    backend = OllamaBackend({"base_url": ollama_server.url})
    backend.download_model(TINY, progress=events.append)
    completed = [e.completed for e in events]
    assert completed == sorted(completed), "overall progress went backwards"
    assert events[-1].status == "success"
    assert events[-1].completed == events[-1].total == TINY_TOTAL
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest"
    assert any(s.startswith("pulling ") and s != "pulling manifest" for s in statuses)
    for phase in ("verifying sha256 digest", "writing manifest"):
        assert phase in statuses
    assert TINY in backend.list_models()


def test_unknown_model_says_where_to_search(ollama_server):
    backend = OllamaBackend({"base_url": ollama_server.url})
    with pytest.raises(DownloadError) as info:
        backend.download_model("no-such-model:7b")
    assert "not in the Ollama library" in str(info.value)
    assert "ollama.com/search" in str(info.value)


def test_bad_name_is_refused(ollama_server):
    backend = OllamaBackend({"base_url": ollama_server.url})
    with pytest.raises(DownloadError, match="invalid model name"):
        backend.download_model("Bad Name!!")


def test_dropped_pull_fails_then_resumes(ollama_server):
    ollama_server.pull_drop_after_bytes = 400_000
    backend = OllamaBackend({"base_url": ollama_server.url})
    with pytest.raises(DownloadError, match="pull again to resume"):
        backend.download_model(TINY)
    assert TINY not in backend.list_models()
    sent_before = ollama_server.pull_bytes_sent
    assert 0 < sent_before < TINY_TOTAL
    ollama_server.pull_drop_after_bytes = None
    events: list[DownloadProgress] = []
    backend.download_model(TINY, progress=events.append)
    resumed = ollama_server.pull_bytes_sent - sent_before
    assert resumed <= TINY_TOTAL - sent_before + 1, "the retry started over"
    assert events[-1].completed == TINY_TOTAL
    assert TINY in backend.list_models()


# --- DownloadManager ------------------------------------------------------------------------


def test_manager_runs_in_background_and_finishes(ollama_server):
    ollama_server.pull_delay = 0.01
    manager = manager_for(ollama_server)
    seen: list[DownloadStatus] = []
    start = time.perf_counter()
    download = manager.start("ollama", TINY, subscriber=seen.append)
    assert time.perf_counter() - start < 0.5, "start() blocked the caller"
    final = download.wait(30)
    assert final.state == DONE
    assert final.completed == final.total == TINY_TOTAL
    assert final.fraction == 1.0
    states = [s.state for s in seen]
    assert states[0] in {QUEUED, RUNNING} and states[-1] == DONE
    done_fractions = [s.completed for s in seen]
    assert done_fractions == sorted(done_fractions)
    assert any(s.speed for s in seen), "no speed was ever computed"
    assert [s.id for s in manager.downloads()] == [download.id]


def test_progress_to_subscribers_is_throttled():
    from tests.servers.ollama_server import OllamaTestServer

    big = {"big:latest": [("sha256:" + "ab" * 32, 20_000_000)]}  # ~300 progress lines
    with OllamaTestServer(library=big) as server:
        server.pull_delay = 0.001
        raw: list[DownloadProgress] = []
        OllamaBackend({"base_url": server.url}).download_model("big", progress=raw.append)

    with OllamaTestServer(library=big) as server:
        server.pull_delay = 0.001
        manager = manager_for(server, throttle=0.1)
        seen: list[DownloadStatus] = []
        final = manager.start("ollama", "big", subscriber=seen.append).wait(60)
    assert final.state == DONE
    elapsed = final.finished_at - final.started_at
    # At most one update per 0.1 s, plus the phase changes (start, pulling, verifying,
    # writing, success, done) and the first snapshot given on subscribe.
    assert len(seen) <= elapsed / 0.1 + 8
    assert len(seen) < len(raw) / 3, "progress was not throttled"
    assert seen[-1].completed == 20_000_000


def test_second_request_joins_the_running_download(ollama_server):
    ollama_server.pull_delay = 0.01
    manager = manager_for(ollama_server)
    first_seen: list[DownloadStatus] = []
    second_seen: list[DownloadStatus] = []
    first = manager.start("ollama", TINY, subscriber=first_seen.append)
    second = manager.start("ollama", TINY, subscriber=second_seen.append)
    assert second is first
    assert first.wait(30).state == DONE
    assert pulls(ollama_server) == 1
    assert first_seen[-1].state == second_seen[-1].state == DONE


def test_queue_limit_holds(ollama_server):
    ollama_server.pull_delay = 0.02
    manager = manager_for(ollama_server, max_concurrent=1)
    first = manager.start("ollama", TINY)
    second = manager.start("ollama", MINILM)
    deadline = time.monotonic() + 10
    while first.snapshot().state != RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert second.snapshot().state == QUEUED
    assert first.wait(30).state == DONE
    assert second.wait(30).state == DONE
    assert second.snapshot().started_at <= second.snapshot().finished_at


def test_cancel_mid_download_leaves_nothing_installed(ollama_server):
    ollama_server.pull_delay = 0.05
    manager = manager_for(ollama_server)
    download = manager.start("ollama", TINY)
    deadline = time.monotonic() + 10
    while download.snapshot().completed == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    manager.cancel(download.id)
    final = download.wait(10)
    assert final.state == CANCELLED
    assert final.completed < TINY_TOTAL
    backend = OllamaBackend({"base_url": ollama_server.url})
    assert TINY not in backend.list_models()
    # A new request after a cancel is a new download, and it completes.
    ollama_server.pull_delay = 0
    again = manager.start("ollama", TINY)
    assert again.id != download.id
    assert again.wait(30).state == DONE
    assert TINY in backend.list_models()


def test_cancel_while_queued(ollama_server):
    ollama_server.pull_delay = 0.02
    manager = manager_for(ollama_server, max_concurrent=1)
    first = manager.start("ollama", TINY)
    queued = manager.start("ollama", MINILM)
    queued.cancel()
    assert queued.wait(5).state == CANCELLED
    assert first.wait(30).state == DONE
    assert pulls(ollama_server) == 1


def test_failure_is_a_state_with_the_message(ollama_server):
    manager = manager_for(ollama_server)
    final = manager.start("ollama", "nope:1b").wait(10)
    assert final.state == FAILED
    assert "not in the Ollama library" in final.error


def test_dropped_download_fails_and_a_retry_resumes(ollama_server):
    ollama_server.pull_drop_after_bytes = 400_000
    manager = manager_for(ollama_server)
    failed = manager.start("ollama", TINY).wait(10)
    assert failed.state == FAILED and "resume" in failed.error
    sent = ollama_server.pull_bytes_sent
    ollama_server.pull_drop_after_bytes = None
    retried = manager.start("ollama", TINY).wait(10)
    assert retried.state == DONE
    assert ollama_server.pull_bytes_sent - sent < TINY_TOTAL


def test_broken_subscriber_does_not_break_the_download(ollama_server):
    manager = manager_for(ollama_server)
    calls = threading.Event()

    def broken(_status: DownloadStatus) -> None:
        calls.set()
        raise RuntimeError("widget went away")

    assert manager.start("ollama", TINY, subscriber=broken).wait(10).state == DONE
    assert calls.is_set()


def test_remote_backend_has_nothing_to_download(openai_server):
    backend = OpenAIBackend({"base_url": openai_server.base_url, "api_key": "x"})
    manager = DownloadManager(lambda name: backend)
    final = manager.start("openai", "gpt-test").wait(5)
    assert final.state == FAILED and "nothing to download" in final.error


def test_cancel_reaches_a_stalled_pull_at_once(ollama_server):
    ollama_server.pull_delay = 5.0  # one progress line every 5 s
    manager = manager_for(ollama_server)
    download = manager.start("ollama", TINY)
    deadline = time.monotonic() + 10
    while download.snapshot().status == "queued" and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    start = time.monotonic()
    download.cancel()
    final = download.wait(5)
    assert final.state == CANCELLED
    assert time.monotonic() - start < 1.0, "cancel waited for the next progress line"
