"""Two models side by side against one alone: ``compare()`` on the Ollama test server.

The test server runs in another process with a fixed delay per chunk, so a reply takes
about ``TOKENS * TOKEN_DELAY`` on the server whatever the client does. Both sides go
through ``localmind_jupyter.compare()``, the code path of the ``%%localmind A B`` magic
(``core.compare.run_compare``: one reading thread per model, events to the caller):

* alone: ``compare(prompt, ["ollama:smollm:135m"])``, one column;
* side by side: ``compare(prompt, ["ollama:smollm:135m", "ollama:qwen2.5:0.5b"])``.

Each round runs both, alternating which goes first; best of ``ROUNDS``. Goal: side by side
takes at most 1.15x as long as alone (the requests overlap, so the comparison costs about
its slowest model). The answer log is on (its default), in a throw-away ``LOCALMIND_HOME``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import start_server, use_ollama_home

TOKENS = 20
TOKEN_DELAY = 0.05  # seconds between two chunks: 1.0 s of server time per reply
ROUNDS = 5
MODELS = ["ollama:smollm:135m", "ollama:qwen2.5:0.5b"]
GOAL = 1.15


def through_compare(models: list[str], round_: int) -> float:
    import localmind_jupyter

    start = time.perf_counter()
    answers = localmind_jupyter.compare(f"round {round_}: say something", models)
    seconds = time.perf_counter() - start
    errors = [a.error for a in answers if a.finish_reason == "error"]
    assert not errors, errors
    assert len(answers) == len(models) and all(a.text for a in answers), answers
    return seconds


def main() -> dict[str, Any]:
    proc, url = start_server(
        "tests.servers.ollama_server",
        "--reply-chunks",
        str(TOKENS),
        "--token-delay",
        str(TOKEN_DELAY),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="localmind-bench-") as home:
            use_ollama_home(url, Path(home), MODELS[0])
            through_compare(MODELS, -1)  # warm up: imports, connections, the answer log
            alone: list[float] = []
            both: list[float] = []
            for round_ in range(ROUNDS):
                order = [(MODELS[:1], alone), (MODELS, both)]
                for models, times in order if round_ % 2 else order[::-1]:
                    times.append(through_compare(models, round_))
    finally:
        proc.terminate()
        proc.wait(10)
    one, two = min(alone), min(both)
    ratio = two / one
    print(
        f"{TOKENS} chunks per reply at {TOKEN_DELAY * 1000:.0f} ms per chunk "
        f"(server in another process); best of {ROUNDS} alternating rounds"
    )
    print(f"  compare(), one model alone:         {one:.3f} s (all: {_all(alone)})")
    print(f"  compare(), two models side by side: {two:.3f} s (all: {_all(both)})")
    print(f"  server-side floor (one reply):      {TOKENS * TOKEN_DELAY:.3f} s")
    verdict = "PASS" if ratio <= GOAL else "FAIL"
    print(f"  ratio side by side / alone: {ratio:.3f} (goal <= {GOAL:.2f}) {verdict}")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return {"alone": one, "both": two, "ratio": ratio}


def _all(times: list[float]) -> str:
    return " ".join(f"{t:.3f}" for t in times)


if __name__ == "__main__":
    main()
    sys.exit(0)
