"""The default engine in a fresh kernel with no config: gguf (llama.cpp) when llama-cpp-python
is installed, Transformers when it is not, and ``%localmind backends`` says why once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_magic_kernel import Kernel, of_type

pytest.importorskip("llama_cpp")  # the test env installs the llamacpp extra (CI too)

HIDER = REPO / "tests" / "hide_llama_cpp"
PROMPT = "%%localmind -t 0 --max-tokens 8\nName one colour."


def _final(messages: list[dict]) -> tuple[dict, str]:
    """The answer's last display (its metadata) and the footer's text."""
    displays = of_type(messages, "display_data", "update_display_data")
    answers = [m for m in displays if "localmind" in m["content"].get("metadata", {})]
    footer = of_type(messages, "display_data")[-1]["content"]["data"]["text/plain"]
    return answers[-1]["content"]["metadata"]["localmind"], footer


def _fresh_kernel(home: Path, hide: bool) -> Kernel:
    """A new kernel with ``%load_ext`` done; ``hide``: the hider first on its ``PYTHONPATH``."""
    from jupyter_client.manager import start_new_kernel

    paths = [str(HIDER), str(REPO)] if hide else [str(REPO)]
    env = {
        **os.environ,
        "LOCALMIND_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(paths),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    kernel = Kernel.__new__(Kernel)
    kernel.manager, kernel.client = start_new_kernel(
        kernel_name="python3", startup_timeout=60, env=env, cwd=str(REPO)
    )
    assert not of_type(kernel.run("%load_ext localmind_jupyter"), "error")
    return kernel


def test_first_answer_goes_through_gguf_when_llama_cpp_is_installed(isolated_home):
    assert not (isolated_home / "config.yaml").exists()
    kernel = _fresh_kernel(isolated_home, hide=False)
    try:
        messages = kernel.run(PROMPT, timeout=120)
        assert not of_type(messages, "error")
        meta, footer = _final(messages)
        assert meta["backend"] == "gguf" and meta["model"] == "smollm2-135m-instruct"
        assert footer.startswith("gguf:smollm2-135m-instruct · ")
        # %load_ext and the answer did not need torch: the fast path stays torch-free
        out = kernel.run("import sys; print('torch' in sys.modules)")
        assert of_type(out, "stream")[-1]["content"]["text"].strip() == "False"
    finally:
        kernel.stop()


def test_first_answer_goes_through_transformers_when_llama_cpp_is_hidden(isolated_home):
    kernel = _fresh_kernel(isolated_home, hide=True)
    try:
        out = kernel.run(
            "import importlib.util as u\ntry: u.find_spec('llama_cpp')\n"
            "except ImportError: print('hidden')"
        )
        assert of_type(out, "stream")[-1]["content"]["text"].strip() == "hidden"
        messages = kernel.run(PROMPT, timeout=240)
        assert not of_type(messages, "error")
        meta, footer = _final(messages)
        assert meta["backend"] == "transformers" and meta["model"] == "smollm2-135m-instruct"
        assert footer.startswith("transformers:smollm2-135m-instruct · ")
        listing = kernel.run("%localmind backends")
        text = "".join(m["content"]["data"]["text/plain"] for m in of_type(listing, "display_data"))
        gguf_rows = [line for line in text.splitlines() if line.lstrip().startswith("gguf")]
        assert len(gguf_rows) == 1, text
        assert "llama-cpp-python is not installed" in gguf_rows[0]
        assert "answers through Transformers" in gguf_rows[0]
        assert text.count("llama-cpp-python is not installed") == 1, "said once"
    finally:
        kernel.stop()
