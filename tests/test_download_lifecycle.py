"""DownloadManager over time: cancel then download again, bounded history and listeners,
and the "download started" event, with the Ollama and Hub loopback servers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.backends.transformers import TransformersBackend
from localmind_jupyter.core.downloads import (
    CANCELLED,
    DONE,
    MAX_LISTENERS,
    RUNNING,
    Download,
    DownloadManager,
    DownloadStatus,
)
from tests.servers.hub_server import HubTestServer, patch_hub_endpoint

TINY = "tinyllama:latest"
MINILM = "all-minilm:latest"
HUB_BIG = "tests/big"
HUB_BIG_SIZE = 24 * 1024 * 1024  # huggingface_hub reports (and sees a cancel) every 10 MiB


def manager_for(server, **kwargs) -> DownloadManager:
    backend = OllamaBackend({"base_url": server.url})
    return DownloadManager(lambda name: backend, **kwargs)


def pulls(server) -> int:
    return sum(1 for _m, path, _b in server.requests if path == "/api/pull")


def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


class Recorder:
    """A subscriber that keeps every snapshot, with the time it arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, DownloadStatus]] = []
        self._lock = threading.Lock()

    def __call__(self, status: DownloadStatus) -> None:
        with self._lock:
            self.seen.append((time.time(), status))

    def statuses(self) -> list[DownloadStatus]:
        with self._lock:
            return [status for _t, status in self.seen]

    def first(self, state: str) -> float:
        with self._lock:
            return next(t for t, status in self.seen if status.state == state)


# --- cancel, then the same model again ------------------------------------------------------


def test_download_right_after_cancel_starts_afresh_and_finishes(ollama_server):
    ollama_server.pull_delay = 0.05
    manager = manager_for(ollama_server)
    old_seen, new_seen = Recorder(), Recorder()
    old = manager.start("ollama", TINY, subscriber=old_seen)
    until(lambda: old.snapshot().completed > 0)
    old.cancel()
    new = manager.start("ollama", TINY, subscriber=new_seen)  # at once: old is still unwinding
    assert new is not old and new.id != old.id
    assert old.wait(10).state == CANCELLED
    ollama_server.pull_delay = 0
    final = new.wait(30)
    assert final.state == DONE, final
    assert TINY in ollama_server.installed
    # The cancelled download's late events went to its own watchers only.
    assert {s.id for s in new_seen.statuses()} == {new.id}
    assert CANCELLED not in {s.state for s in new_seen.statuses()}
    assert old_seen.statuses()[-1].state == CANCELLED
    # The new transfer began only once the cancelled one had stopped.
    assert new_seen.first(RUNNING) >= old.snapshot().finished_at
    assert "waiting for the cancelled download to stop" in {s.status for s in new_seen.statuses()}
    assert pulls(ollama_server) == 2
    # Both are in the history; a third request joins the new one only while it runs.
    assert [s.id for s in manager.downloads()] == [old.id, new.id]


def test_a_later_request_joins_the_fresh_download_not_the_cancelled_one(ollama_server):
    ollama_server.pull_delay = 0.05
    manager = manager_for(ollama_server)
    old = manager.start("ollama", TINY)
    until(lambda: old.snapshot().completed > 0)
    old.cancel()
    new = manager.start("ollama", TINY)
    assert new is not old
    assert manager.start("ollama", TINY) is new
    new.cancel()
    assert new.wait(10).state == CANCELLED
    assert old.wait(10).state == CANCELLED
    assert TINY not in ollama_server.installed
    fresh = manager.start("ollama", TINY)  # and again: a third download, which finishes
    assert fresh not in (old, new)
    ollama_server.pull_delay = 0
    assert fresh.wait(30).state == DONE


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubTestServer]:
    import json

    import numpy as np
    from safetensors.numpy import save_file

    repo = tmp_path / "big-repo"
    repo.mkdir()
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    (repo / "config.json").write_text(json.dumps(config))
    weights = np.random.default_rng(0).random(HUB_BIG_SIZE // 4, dtype=np.float32)
    save_file({"w": weights}, str(repo / "model.safetensors"))
    with (
        HubTestServer({HUB_BIG: repo}) as server,
        patch_hub_endpoint(server.url, cache_dir=tmp_path / "hub"),
    ):
        yield server


def test_hub_download_right_after_cancel_starts_afresh_and_finishes(hub, tmp_path):
    backend = TransformersBackend({"hub_cache_dir": str(tmp_path / "hub")})
    manager = DownloadManager(lambda name: backend)
    hub.byte_delay = 0.005  # ~13 MB/s: the cancel is noticed at the next 10 MiB, ~0.8 s later
    old = manager.start("transformers", HUB_BIG)
    until(lambda: old.snapshot().completed > 0, timeout=30)
    old.cancel()
    new_seen = Recorder()
    new = manager.start("transformers", HUB_BIG, subscriber=new_seen)
    assert new is not old
    assert old.wait(30).state == CANCELLED
    hub.byte_delay = 0
    final = new.wait(60)
    assert final.state == DONE, final.error
    assert HUB_BIG in backend.list_models()
    assert {s.id for s in new_seen.statuses()} == {new.id}
    assert new_seen.first(RUNNING) >= old.snapshot().finished_at


# --- bounded history and listeners ----------------------------------------------------------


def test_history_keeps_running_downloads_and_the_last_finished_ones(ollama_server):
    assert DownloadManager(lambda name: None).max_history == 50  # type: ignore[arg-type,return-value]
    manager = manager_for(ollama_server, max_history=3)
    ollama_server.pull_delay = 0.2
    running = manager.start("ollama", TINY)
    finished = []
    for _ in range(6):
        done = manager.start("ollama", MINILM)
        assert done.wait(30).state == DONE
        finished.append(done.id)
    listed = [s.id for s in manager.downloads()]
    assert listed == [running.id, *finished[-3:]]
    assert manager.get(finished[0]) is None  # forgotten: REST answers 404 for it
    assert manager.get(running.id) is running
    running.cancel()
    assert running.wait(10).state == CANCELLED
    assert len(manager.downloads()) == 3


def test_a_finished_download_lets_its_watchers_go(ollama_server):
    manager = manager_for(ollama_server)
    seen = Recorder()
    download = manager.start("ollama", MINILM, subscriber=seen)
    assert download.wait(30).state == DONE
    assert download.watchers == 0
    late = Recorder()
    download.subscribe(late)  # gets the final state at once, and is not kept
    assert [s.state for s in late.statuses()] == [DONE]
    assert download.watchers == 0


def test_watchers_of_one_download_are_capped_oldest_dropped(ollama_server, caplog):
    ollama_server.pull_delay = 0.05
    manager = manager_for(ollama_server)
    download = manager.start("ollama", TINY)
    recorders = [Recorder() for _ in range(MAX_LISTENERS + 10)]
    with caplog.at_level(logging.WARNING, logger="localmind_jupyter.core.listeners"):
        for recorder in recorders:
            download.subscribe(recorder)
    assert download.watchers == MAX_LISTENERS
    assert "no longer gets events" in caplog.text and "close panels" in caplog.text
    assert download.wait(30).state == DONE
    assert recorders[-1].statuses()[-1].state == DONE  # the newest watchers are served
    assert recorders[0].statuses()[-1].state != DONE  # the oldest were dropped
    assert download.watchers == 0


# --- "download started" ---------------------------------------------------------------------


def test_listeners_hear_of_every_new_download_but_not_of_joins(ollama_server):
    ollama_server.pull_delay = 0.02
    manager = manager_for(ollama_server)
    started: list[tuple[Download, str]] = []

    def listener(download: Download) -> None:
        started.append((download, download.snapshot().state))

    def broken(_download: Download) -> None:
        raise RuntimeError("panel went away")

    manager.subscribe(broken)
    manager.subscribe(listener)
    manager.subscribe(listener)  # once is enough
    assert manager.listeners == 2
    first = manager.start("ollama", TINY)
    assert manager.start("ollama", TINY) is first  # a join is no new download
    other = manager.start("ollama", MINILM)
    assert [d for d, _state in started] == [first, other]
    assert {state for _d, state in started} == {"queued"}  # told before the transfer begins
    first.cancel()
    again = manager.start("ollama", TINY)  # after a cancel: a new download, announced
    assert [d for d, _state in started] == [first, other, again]
    manager.unsubscribe(listener)
    manager.unsubscribe(broken)
    assert manager.listeners == 0
    assert again.wait(30).state == DONE and other.wait(30).state == DONE
    manager.start("ollama", "qwen2.5:0.5b").wait(30)
    assert len(started) == 3


def test_start_listeners_are_capped(ollama_server):
    manager = manager_for(ollama_server)
    recorders = [[] for _ in range(MAX_LISTENERS + 5)]
    for seen in recorders:
        manager.subscribe(seen.append)
    assert manager.listeners == MAX_LISTENERS
    download = manager.start("ollama", MINILM)
    assert recorders[-1] == [download] and recorders[0] == []
    download.wait(30)
