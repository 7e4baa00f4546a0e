"""64 prompts through ``batch()`` against the Ollama test server with a fixed per-token delay.

Two ratios, both measured in this run against the same server (in another process):

* speed-up: ``batch(concurrency=8)`` against ``batch(concurrency=1)`` (sequential).
  Goal: at least 6x (8x is the ceiling: 64 requests in 8 waves instead of 64).
* overhead: ``batch(concurrency=8)`` against raw ``httpx.AsyncClient`` sending the same 64
  streaming ``/api/chat`` requests with ``asyncio.gather`` under ``asyncio.Semaphore(8)``,
  reading every NDJSON line as any client must. Goal: ours / raw <= 1.10.

Each reply is ``TOKENS`` chunks, one every ``TOKEN_DELAY`` seconds, so a request takes
about ``TOKENS * TOKEN_DELAY`` on the server whatever the client does. ``batch()`` runs with
the answer log on (its default), in a throw-away ``LOCALMIND_HOME``, and ``resume=False``
so that every round really sends its 64 requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _util import start_server, use_ollama_home

PROMPTS = 64
CONCURRENCY = 8
TOKENS = 16
TOKEN_DELAY = 0.01  # seconds between two chunks: 0.16 s of server time per request
ROUNDS = 3
MODEL = "smollm:135m"
SPEEDUP_GOAL = 6.0
OVERHEAD_GOAL = 1.10


def prompts(round_: int) -> list[str]:
    return [f"row {i} of round {round_}: say something" for i in range(PROMPTS)]


async def _raw(url: str, texts: list[str]) -> list[str]:
    limit = asyncio.Semaphore(CONCURRENCY)
    # Enough connections for the semaphore's 8 (httpx's default pool allows 100, keeps 20).
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(prompt: str) -> str:
            body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
            parts: list[str] = []
            async with limit, client.stream("POST", "/api/chat", json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line:
                        content = json.loads(line)["message"]["content"]
                        if content:
                            parts.append(content)
            return "".join(parts)

        return await asyncio.gather(*(one(p) for p in texts))


def raw_async(url: str, round_: int) -> tuple[float, int]:
    start = time.perf_counter()
    answers = asyncio.run(_raw(url, prompts(round_)))
    seconds = time.perf_counter() - start
    return seconds, sum(1 for a in answers if a)


def through_batch(round_: int, concurrency: int) -> tuple[float, int]:
    import localmind_jupyter

    start = time.perf_counter()
    result = localmind_jupyter.batch(
        prompts(round_),
        f"ollama:{MODEL}",
        concurrency=concurrency,
        resume=False,
        progress=False,
    )
    seconds = time.perf_counter() - start
    errors = [r.error for r in result if r.finish_reason == "error"]
    assert not errors, errors[:3]
    return seconds, sum(1 for text in result.texts if text)


def logged_answers(home: Path) -> int:
    """Rows in the answer log: every batch() answer was written there, inside the timing."""
    with contextlib.closing(sqlite3.connect(home / "log.db")) as conn:
        return int(conn.execute("SELECT count(*) FROM answers").fetchone()[0])


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
            use_ollama_home(url, Path(home), f"ollama:{MODEL}")
            through_batch(-1, CONCURRENCY), raw_async(url, -1)  # warm up both paths
            sequential, count = through_batch(0, 1)
            assert count == PROMPTS, count
            raw_times: list[float] = []
            our_times: list[float] = []
            for round_ in range(1, ROUNDS + 1):
                # Alternate who goes first so drift in machine load hits both sides alike.
                order = [
                    (lambda r: raw_async(url, r), raw_times),
                    (lambda r: through_batch(r, CONCURRENCY), our_times),
                ]
                for run, times in order if round_ % 2 else order[::-1]:
                    seconds, count = run(round_)
                    assert count == PROMPTS, count
                    times.append(seconds)
            logged = logged_answers(Path(home))
    finally:
        proc.terminate()
        proc.wait(10)
    raw, ours = min(raw_times), min(our_times)
    speedup, overhead = sequential / ours, ours / raw
    floor = PROMPTS / CONCURRENCY * TOKENS * TOKEN_DELAY
    print(
        f"{PROMPTS} prompts, {TOKENS} chunks each at {TOKEN_DELAY * 1000:.0f} ms per chunk "
        f"(server in another process); best of {ROUNDS} alternating rounds"
    )
    print(f"  batch(), concurrency 1 (sequential):     {sequential:.3f} s")
    print(f"  batch(), concurrency {CONCURRENCY}:                 {ours:.3f} s")
    print(f"  raw httpx.AsyncClient + gather, sem {CONCURRENCY}:   {raw:.3f} s")
    print(f"  server-side floor (8 waves of one reply): {floor:.3f} s")
    print(f"  answers batch() wrote to the answer log: {logged}")
    verdict = "PASS" if speedup >= SPEEDUP_GOAL else "FAIL"
    print(f"  speed-up concurrency {CONCURRENCY} / sequential: {speedup:.2f}x ", end="")
    print(f"(goal >= {SPEEDUP_GOAL:g}x) {verdict}")
    verdict = "PASS" if overhead <= OVERHEAD_GOAL else "FAIL"
    print(f"  wall ratio batch() / raw: {overhead:.3f} (goal <= {OVERHEAD_GOAL:.2f}) {verdict}")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return {"speedup": speedup, "overhead": overhead, "sequential": sequential, "raw": raw}


if __name__ == "__main__":
    main()
    sys.exit(0)
