"""Rerunning a finished 64-row batch with ``resume=True``: every row comes from the answer log.

The first run sends 64 requests to the Ollama test server and logs each answer in a
throw-away ``LOCALMIND_HOME``; the rerun of the same batch must send none (the server
counts them) and finish in under 0.5 s, answers equal to the first run's. The server runs
in this process so its request count can be read; the rerun sends nothing to it anyway.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import _util  # noqa: F401 - puts the repository on sys.path

from tests.servers.ollama_server import OllamaTestServer

PROMPTS = 64
ROUNDS = 5
MODEL = "smollm:135m"
SECONDS_GOAL = 0.5


def chats(server: OllamaTestServer) -> int:
    return sum(1 for _m, path, _b in server.requests if path == "/api/chat")


def main() -> dict[str, float]:
    with (
        OllamaTestServer() as server,
        tempfile.TemporaryDirectory(prefix="localmind-bench-") as home,
    ):
        server.token_delay = 0.002
        (Path(home) / "config.yaml").write_text(
            f"default_model: ollama:{MODEL}\nbackends:\n  ollama:\n    type: ollama\n"
            f'    settings: {{base_url: "{server.url}"}}\n'
        )
        os.environ["LOCALMIND_HOME"] = home
        os.environ.pop("LOCALMIND_CONFIG", None)
        import localmind_jupyter

        prompts = [f"row {i}: say something" for i in range(PROMPTS)]

        def run() -> tuple[float, list[str]]:
            start = time.perf_counter()
            result = localmind_jupyter.batch(prompts, f"ollama:{MODEL}", progress=False)
            seconds = time.perf_counter() - start
            assert result.ok, result.errors
            return seconds, result.texts

        first, texts = run()
        sent_first = chats(server)
        reruns: list[float] = []
        for _ in range(ROUNDS):
            seconds, again = run()
            assert again == texts, "a resumed answer differs from the logged one"
            reruns.append(seconds)
        sent_again = chats(server) - sent_first
    best, worst = min(reruns), max(reruns)
    print(f"{PROMPTS}-row batch against the Ollama test server, then {ROUNDS} reruns")
    print(f"  first run: {first:.3f} s, {sent_first} requests")
    print(f"  rerun with resume=True: {best:.3f} s best, {worst:.3f} s worst")
    verdict = "PASS" if sent_again == 0 else "FAIL"
    print(f"  requests sent by the reruns: {sent_again} (goal 0) {verdict}")
    verdict = "PASS" if worst < SECONDS_GOAL else "FAIL"
    print(f"  slowest rerun {worst:.3f} s (goal < {SECONDS_GOAL} s) {verdict}")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return {"first": first, "rerun": worst, "sent": float(sent_again)}


if __name__ == "__main__":
    main()
    sys.exit(0)
