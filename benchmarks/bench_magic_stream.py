"""20,000 chunks end to end through ``%%localmind`` in a real kernel vs raw httpx in that kernel.

Both cells read the same stream from the Ollama test server (another process); we
time each execute request from send to idle, as a user sees it, and count the
display messages the magic sent. Goal: ratio <= 1.10, display messages bounded.
"""

from __future__ import annotations

import os
import queue
import tempfile
import textwrap
import time
from pathlib import Path

from _util import REPO, start_server

CHUNKS = 20_000
ROUNDS = 5

RAW_CELL = """
import httpx, json
_parts = []
with httpx.Client(base_url={url!r}, timeout=60) as _c:
    with _c.stream("POST", "/api/chat", json={{"model": "smollm:135m",
                   "messages": [{{"role": "user", "content": "go"}}]}}) as _r:
        for _line in _r.iter_lines():
            if _line:
                _content = json.loads(_line)["message"]["content"]
                if _content:
                    _parts.append(_content)
print(len(_parts))
"""

MAGIC_CELL = "%%localmind ollama:smollm:135m --no-stats --no-history\ngo"


def run_cell(client, code: str) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    msg_id = client.execute(code)
    messages = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=120)
        except queue.Empty as exc:
            raise TimeoutError(code) from exc
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return time.perf_counter() - start, messages


def main() -> dict[str, float]:
    from jupyter_client.manager import start_new_kernel

    proc, url = start_server("tests.servers.ollama_server", "--reply-chunks", str(CHUNKS))
    with tempfile.TemporaryDirectory() as home:
        Path(home, "config.yaml").write_text(
            textwrap.dedent(f"backends:\n  ollama:\n    settings: {{base_url: '{url}'}}\n")
        )
        env = {**os.environ, "LOCALMIND_HOME": home, "PYTHONPATH": str(REPO)}
        manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(REPO))
        try:
            run_cell(client, "%load_ext localmind_jupyter")
            run_cell(client, RAW_CELL.format(url=url))  # warm up both paths
            run_cell(client, MAGIC_CELL)
            raw_times, magic_times, display_counts = [], [], []
            for _ in range(ROUNDS):
                seconds, _ = run_cell(client, RAW_CELL.format(url=url))
                raw_times.append(seconds)
                seconds, messages = run_cell(client, MAGIC_CELL)
                magic_times.append(seconds)
                display_counts.append(
                    sum(m["msg_type"] in {"display_data", "update_display_data"} for m in messages)
                )
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
            proc.terminate()
            proc.wait(10)
    raw, magic = min(raw_times), min(magic_times)
    print(f"{CHUNKS} chunks end to end in a kernel, best of {ROUNDS}")
    print(f"  raw httpx cell:        {raw:.3f} s")
    print(f"  %%localmind cell:      {magic:.3f} s, {max(display_counts)} display messages")
    print(f"  ratio magic/raw: {magic / raw:.3f} (goal <= 1.10)")
    return {"raw_s": raw, "magic_s": magic, "ratio": magic / raw, "displays": max(display_counts)}


if __name__ == "__main__":
    main()
