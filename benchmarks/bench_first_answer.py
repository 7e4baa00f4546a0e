"""The first ``%%localmind`` answer in a fresh kernel with no config: today's default engine
against the old Transformers path, as a whole-kernel measurement.

Each round starts a new kernel (``jupyter_client``, the repository on its ``PYTHONPATH``, a
throw-away ``LOCALMIND_HOME``), runs ``%load_ext localmind_jupyter``, then times one
``%%localmind`` cell from execute to the kernel's idle on IOPub: imports, the model's load,
the prompt and 32 greedy tokens. The default path has no config at all (gguf when
llama-cpp-python is installed); the old path's config only names
``default_model: transformers:smollm2-135m-instruct`` (what the default was before).
Rounds alternate which side goes first; medians are printed. Goal: default under 1 s.
"""

from __future__ import annotations

import os
import queue
import tempfile
import time
from pathlib import Path

from _util import REPO, median

ROUNDS = 3
CELL = "%%localmind -t 0 --max-tokens 32\nWhat is the capital of France? Answer in one sentence."


def run(client: object, code: str, timeout: float = 300) -> tuple[float, list[dict]]:
    """Execute ``code``; seconds until idle and this execution's IOPub messages."""
    start = time.perf_counter()
    msg_id = client.execute(code)  # type: ignore[attr-defined]
    messages: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=1)  # type: ignore[attr-defined]
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter() - start, messages
    raise TimeoutError(f"no idle after {timeout} s")


def first_answer(config: str | None) -> tuple[float, float, str]:
    """(load_ext s, first answer s, footer) in a fresh kernel; ``config``: config.yaml text."""
    from jupyter_client.manager import start_new_kernel

    with tempfile.TemporaryDirectory() as home:
        if config is not None:
            (Path(home) / "config.yaml").write_text(config)
        env = {
            **os.environ,
            "LOCALMIND_HOME": home,
            "PYTHONPATH": str(REPO),
            "JUPYTER_PLATFORM_DIRS": "1",
            "HF_HUB_OFFLINE": "1",
        }
        manager, client = start_new_kernel(
            kernel_name="python3", startup_timeout=60, env=env, cwd=str(REPO)
        )
        try:
            load_ext, _ = run(client, "%load_ext localmind_jupyter")
            answer, messages = run(client, CELL)
            errors = [m for m in messages if m["msg_type"] == "error"]
            if errors:
                raise RuntimeError(errors[0]["content"]["evalue"])
            shown = [m for m in messages if m["msg_type"] == "display_data"]
            footer = shown[-1]["content"]["data"]["text/plain"].split(" · ")[0]
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    return load_ext, answer, footer


def main() -> dict[str, float]:
    old_config = "default_model: transformers:smollm2-135m-instruct\n"
    first_answer(old_config)  # converts the bundled model for Transformers on the very first run
    sides: dict[str, list[tuple[float, float, str]]] = {"default": [], "old": []}
    for index in range(ROUNDS):
        order = [("default", None), ("old", old_config)]
        for name, config in order if index % 2 == 0 else order[::-1]:
            sides[name].append(first_answer(config))
    new = median([a for _, a, _ in sides["default"]])
    old = median([a for _, a, _ in sides["old"]])
    load_ext = median([e for e, _, _ in sides["default"] + sides["old"]])
    print(
        f"First %%localmind answer in a fresh kernel, no config, execute to idle, 32 greedy "
        f"tokens, median of {ROUNDS} kernels per side"
    )
    print(f"  default path ({sides['default'][0][2]}):        {new:6.2f} s (goal < 1 s)")
    print(f"  old path ({sides['old'][0][2]}): {old:6.2f} s")
    print(f"  ratio old/default: {old / new:.2f}x faster")
    print(f"  (%load_ext before it: {load_ext * 1000:.0f} ms median)")
    return {"default_s": new, "old_s": old, "ratio": old / new}


if __name__ == "__main__":
    main()
