"""The vLLM case on one machine: ``batch()`` at concurrency 48 against an OpenAI-compatible server.

docs/batch.md § Scale beyond one machine raises ``concurrency`` to 48 for a vLLM server.
This checks the client side keeps up at that many open requests: the OpenAI-compatible
test server (another process) answers each of ``PROMPTS`` prompts with ``TOKENS`` chunks,
one every ``TOKEN_DELAY`` seconds, and ``batch()`` through the ``vllm`` preset runs them at
concurrency 8 and 48, against the official SDK's ``AsyncOpenAI`` streaming the same requests
with ``asyncio.gather`` under ``asyncio.Semaphore(48)``. Ratios are printed; the test
server is no GPU engine, so this measures LocalMind's client, not a model's throughput.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from _util import start_server

PROMPTS = 192
WIDE = 48
TOKENS = 16
TOKEN_DELAY = 0.01
ROUNDS = 3
MODEL = "gpt-test"


def prompts(round_: int) -> list[str]:
    return [f"row {i} of round {round_}: say something" for i in range(PROMPTS)]


async def _raw(base_url: str, texts: list[str]) -> list[str]:
    import openai

    limit = asyncio.Semaphore(WIDE)
    async with openai.AsyncOpenAI(base_url=base_url, api_key="not-needed") as client:

        async def one(prompt: str) -> str:
            async with limit:
                stream = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True
                )
                parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return "".join(parts)

        return await asyncio.gather(*(one(p) for p in texts))


def raw_async(base_url: str, round_: int) -> tuple[float, float, int]:
    start, cpu = time.perf_counter(), time.process_time()
    answers = asyncio.run(_raw(base_url, prompts(round_)))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return seconds, cpu, sum(1 for a in answers if a)


def through_batch(round_: int, concurrency: int) -> tuple[float, float, int]:
    import localmind_jupyter

    start, cpu = time.perf_counter(), time.process_time()
    result = localmind_jupyter.batch(
        prompts(round_), f"gpu:{MODEL}", concurrency=concurrency, resume=False, progress=False
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert result.ok, list(result.errors.items())[:3]
    return seconds, cpu, sum(1 for text in result.texts if text)


def main() -> dict[str, float]:
    proc, base_url = start_server(
        "tests.servers.openai_server",
        "--reply-chunks",
        str(TOKENS),
        "--token-delay",
        str(TOKEN_DELAY),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="localmind-bench-") as home:
            (Path(home) / "config.yaml").write_text(
                "backends:\n  gpu:\n    type: openai\n    settings:\n      preset: vllm\n"
                f'      base_url: "{base_url}"\n'
            )
            os.environ["LOCALMIND_HOME"] = home
            os.environ.pop("LOCALMIND_CONFIG", None)
            through_batch(-1, WIDE), raw_async(base_url, -1)  # warm up both paths
            narrow: list[tuple[float, float]] = []
            wide: list[tuple[float, float]] = []
            raw: list[tuple[float, float]] = []
            for round_ in range(ROUNDS):
                for run, times in (
                    (lambda r: raw_async(base_url, r), raw),
                    (lambda r: through_batch(r, WIDE), wide),
                    (lambda r: through_batch(r, 8), narrow),
                )[:: 1 if round_ % 2 else -1]:
                    seconds, cpu, count = run(round_)
                    assert count == PROMPTS, count
                    times.append((seconds, cpu))
    finally:
        proc.terminate()
        proc.wait(10)
    best_narrow, best_wide, best_raw = (min(t for t, _ in times) for times in (narrow, wide, raw))
    cpu_wide, cpu_raw = min(c for _, c in wide), min(c for _, c in raw)
    chunks = PROMPTS * (TOKENS + 1)
    floor = PROMPTS / WIDE * TOKENS * TOKEN_DELAY
    print(
        f"{PROMPTS} prompts, {TOKENS} chunks each at {TOKEN_DELAY * 1000:.0f} ms per chunk, "
        f"OpenAI-compatible test server (another process); best of {ROUNDS} rounds"
    )
    print(f"  batch(), vllm preset, concurrency 8:   {best_narrow:.3f} s")
    print(f"  batch(), vllm preset, concurrency {WIDE}:  {best_wide:.3f} s")
    print(f"  raw AsyncOpenAI + gather, sem {WIDE}:    {best_raw:.3f} s")
    print(f"  server-side floor at {WIDE} ({PROMPTS // WIDE} waves):  {floor:.3f} s")
    print(
        f"  client CPU per row at {WIDE}: batch() {cpu_wide / PROMPTS * 1000:.2f} ms, raw SDK "
        f"{cpu_raw / PROMPTS * 1000:.2f} ms ({cpu_wide / chunks * 1000:.3f} / "
        f"{cpu_raw / chunks * 1000:.3f} ms per streamed chunk)"
    )
    print(f"  concurrency {WIDE} / 8: {best_narrow / best_wide:.2f}x faster")
    print(f"  wall ratio batch() / raw at {WIDE}: {best_wide / best_raw:.3f}")
    print(f"  client CPU ratio batch() / raw at {WIDE}: {cpu_wide / cpu_raw:.3f}")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return {
        "speedup": best_narrow / best_wide,
        "overhead": best_wide / best_raw,
        "cpu_ratio": cpu_wide / cpu_raw,
    }


if __name__ == "__main__":
    main()
    sys.exit(0)
