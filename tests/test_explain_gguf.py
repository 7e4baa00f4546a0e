"""``%localmind explain`` with the real bundled model (llama.cpp): it answers about the error
it was sent, and the bounded prompt of even a digit-heavy chained traceback fits its
2048-token context with room for the answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from localmind_jupyter.backends import _embedded
from localmind_jupyter.core.explain import PROMPT_CHARS, build_prompt
from tests.test_magic_shell import ip  # noqa: F401 - the fixture, shared

N_CTX = 2048  # the gguf backend's default n_ctx
ANSWER_TOKENS = 64
CHAT_TEMPLATE_TOKENS = 40  # the chat template's role markers around the prompt


@pytest.fixture
def gguf_default(isolated_home: Path) -> None:
    (isolated_home / "config.yaml").write_text(
        f"default_model: gguf:{_embedded.EMBEDDED_MODEL_NAME}\nbackends:\n  gguf: {{type: gguf}}\n"
    )


def explain(ip, capsys) -> tuple[str, str]:  # noqa: F811
    capsys.readouterr()
    ip.run_line_magic("localmind", f"explain -t 0 --max-tokens {ANSWER_TOKENS} --no-history")
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_the_model_explains_a_division_by_zero(ip, gguf_default, capsys):  # noqa: F811
    ip.run_cell("def ratio(a, b):\n    return a / b\n", store_history=True)
    ip.run_cell("ratio(10, 0)", store_history=True)
    _out, err = explain(ip, capsys)
    assert not err
    response = ip.user_ns["_localmind"]
    assert response.backend == "gguf" and response.completion_tokens > 0
    assert "zero" in response.text.lower()


def test_the_largest_prompt_fits_the_small_models_context():
    """Counted with the model's own tokenizer (its vocabulary only: no inference)."""
    import llama_cpp

    from tests.test_explain import Notebook

    path = _embedded.embedded_model_path()
    assert path is not None
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    digits = ", ".join(str(i) for i in range(400))  # digits: the most tokens per character
    code = "".join(
        f"def level{i}(n):\n"
        f"    data_{i} = [{digits}]\n"
        "    try:\n"
        f"        return level{i + 1}(n)\n"
        "    except Exception as exc:\n"
        f"        raise ValueError('level {i} ' + str(data_{i})) from exc\n"
        for i in range(6)
    )
    notebook = Notebook()
    try:
        cell = notebook.fail(
            code + "def level6(n):\n    raise KeyError(list(range(3000)))\nlevel0(1)\n"
        )
    finally:
        notebook.close()
    prompt = build_prompt(cell)
    assert PROMPT_CHARS - 500 < len(prompt) <= PROMPT_CHARS, "not the largest case any more"
    tokens = len(vocab.tokenize(prompt.encode()))
    assert tokens + CHAT_TEMPLATE_TOKENS + ANSWER_TOKENS <= N_CTX, tokens
