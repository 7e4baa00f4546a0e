"""The answer log end to end with the real bundled model (llama.cpp): the logged answer and
its stats are the model's, and the same request is answered from the log."""

from __future__ import annotations

from pathlib import Path

from localmind_jupyter.backends import _embedded
from localmind_jupyter.config import parse_config
from localmind_jupyter.core.model_loader import ModelLoader

PARIS = "What is the capital of France? Answer in one sentence."


def test_a_real_answer_is_logged_and_served_from_the_log(isolated_home: Path) -> None:
    loader = ModelLoader(parse_config("backends:\n  gguf: {type: gguf}\n"))
    backend, model = loader.resolve(f"gguf:{_embedded.EMBEDDED_MODEL_NAME}")
    answer = backend.generate(PARIS, model, temperature=0, max_tokens=40)
    assert "Paris" in answer.text
    log = loader.answer_log
    assert log is not None
    (row,) = log.entries(model=f"gguf:{model}")
    assert row["answer"] == answer.text and row["backend_type"] == "gguf"
    assert row["prompt_tokens"] == answer.prompt_tokens and row["prompt_tokens"] > 10
    assert row["completion_tokens"] == answer.completion_tokens
    assert row["tokens_per_second"] == answer.tokens_per_second and row["ok"]
    request = backend.build_request(PARIS, model, temperature=0, max_tokens=40)
    cached = log.cached("gguf", request)
    assert cached is not None and cached.text == answer.text
    assert cached.completion_tokens == answer.completion_tokens
