"""Transformers downloads from a Hub-compatible loopback server through huggingface_hub."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmind_jupyter.backends.base import DownloadProgress
from localmind_jupyter.backends.transformers import TransformersBackend
from localmind_jupyter.core.downloads import CANCELLED, DONE, FAILED, DownloadManager
from localmind_jupyter.errors import DownloadError
from tests.servers.hub_server import HubTestServer, make_tiny_llama_repo, patch_hub_endpoint

TINY = "tests/tiny-chat"
BIG = "tests/big"
BIG_SIZE = 24 * 1024 * 1024  # over the hub library's 10 MiB resume granularity


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama_repo(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo whose weights file is big enough for progress, cancel and resume to show."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("big")
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    (folder / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    save_file({"w": rng.random(BIG_SIZE // 4, dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture
def hub(tiny_repo: Path, big_repo: Path, tmp_path: Path) -> Iterator[HubTestServer]:
    with (
        HubTestServer({TINY: tiny_repo, BIG: big_repo}) as server,
        patch_hub_endpoint(server.url, cache_dir=tmp_path / "hub"),
    ):
        yield server


@pytest.fixture
def backend(tmp_path: Path) -> TransformersBackend:
    return TransformersBackend({"hub_cache_dir": str(tmp_path / "hub")})


def file_gets(hub: HubTestServer, name: str) -> list:
    return [r for r in hub.file_requests("GET") if r.path.endswith("/" + name)]


def test_download_reports_overall_bytes_and_the_model_then_generates(hub, backend, tiny_repo):
    events: list[DownloadProgress] = []
    backend.download_model(TINY, progress=events.append)
    completed = [e.completed for e in events]
    assert completed == sorted(completed), "progress went backwards"
    wanted = [p for p in tiny_repo.iterdir() if p.suffix in {".json", ".safetensors", ".jinja"}]
    total = sum(p.stat().st_size for p in wanted)
    assert events[-1].status == "success"
    assert events[-1].completed == events[-1].total == total
    assert any(e.status == "downloading" and 0 < e.completed < total for e in events)
    # Only what a causal LM needs: no .bin duplicate, no ONNX export, no README.
    fetched = {r.path.rsplit("/resolve/", 1)[-1].split("/", 1)[-1] for r in hub.file_requests()}
    assert "model.safetensors" in fetched and "config.json" in fetched
    assert not {"pytorch_model.bin", "README.md", "onnx/model.onnx"} & fetched
    assert TINY in backend.list_models()
    response = backend.generate("hello", TINY, max_tokens=3)
    assert response.completion_tokens and response.completion_tokens > 0


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "owner/name/extra", "owner/..", "just-a-name", "/abs/path", "a b/c"]
)
def test_bad_repo_ids_are_refused_before_any_request(hub, backend, bad):
    with pytest.raises(DownloadError, match="not a Hugging Face Hub repository id"):
        backend.download_model(bad)
    assert hub.requests == []


def test_unknown_repo(hub, backend):
    with pytest.raises(DownloadError, match="no model 'tests/nothing' on the Hugging Face Hub"):
        backend.download_model("tests/nothing")


def test_cancel_mid_download_leaves_nothing_installed(hub, backend):
    hub.byte_delay = 0.01
    manager = DownloadManager(lambda name: backend)
    download = manager.start("transformers", BIG)
    deadline = time.monotonic() + 30
    while download.snapshot().completed < 2_000_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    download.cancel()
    final = download.wait(30)
    assert final.state == CANCELLED
    assert 0 < final.completed < BIG_SIZE
    assert BIG not in backend.list_models()
    hub.byte_delay = 0
    again = manager.start("transformers", BIG).wait(60)
    assert again.state == DONE, again.error
    assert BIG in backend.list_models()


def test_dropped_connection_is_resumed_by_the_hub_library(hub, backend):
    """A clean drop mid-file: huggingface_hub retries with a Range request for the rest."""
    hub.drop_after_bytes = 15 * 1024 * 1024
    hub.drop_file = "model.safetensors"
    backend.download_model(BIG)
    gets = file_gets(hub, "model.safetensors")
    assert len(gets) == 2
    assert (gets[1].headers.get("Range") or "").startswith("bytes=")
    assert hub.bytes_sent_by_file["model.safetensors"] < 1.5 * BIG_SIZE, "the retry started over"
    assert BIG in backend.list_models()


def test_reset_connection_fails_clearly_and_a_retry_succeeds(hub, backend):
    hub.drop_after_bytes = 5 * 1024 * 1024
    hub.drop_file = "model.safetensors"
    hub.drop_with_reset = True
    with pytest.raises(DownloadError, match="connection to the Hub") as info:
        backend.download_model(BIG)
    assert "download again" in str(info.value)
    assert BIG not in backend.list_models()
    hub.reset_faults()
    backend.download_model(BIG)
    assert BIG in backend.list_models()


def test_two_requests_for_one_model_make_one_transfer(hub, backend):
    hub.byte_delay = 0.002
    manager = DownloadManager(lambda name: backend)
    first = manager.start("transformers", BIG)
    second = manager.start("transformers", BIG)
    assert first is second
    assert first.wait(60).state == DONE
    assert len(file_gets(hub, "model.safetensors")) == 1


def test_server_error_is_a_failed_download_with_the_reason(hub, backend):
    hub.fail_status = 500
    manager = DownloadManager(lambda name: backend)
    final = manager.start("transformers", TINY).wait(60)
    assert final.state == FAILED
    assert "500" in final.error and TINY in final.error


def test_progress_events_are_throttled_by_the_manager(hub, backend):
    hub.byte_delay = 0.001
    seen = []
    lock = threading.Lock()

    def record(status) -> None:
        with lock:
            seen.append(status)

    final = DownloadManager(lambda name: backend).start("transformers", BIG, record).wait(60)
    assert final.state == DONE and final.completed == final.total
    elapsed = final.finished_at - final.started_at
    assert len(seen) <= elapsed / 0.1 + 8
    assert [s.completed for s in seen] == sorted(s.completed for s in seen)
