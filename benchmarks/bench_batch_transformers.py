"""Batched ``generate_batch`` vs one ``generate`` at a time, bundled model, Transformers.

The same 16 prompts (short and long, so the batch pads), greedy, the same
``max_tokens``, one backend in one process: rounds alternate the two sides (best of
``ROUNDS`` each). Tokens/s = all new tokens over the wall time of the whole side, the
prompt passes included. The answers must be identical (greedy decoding is
deterministic, and padding must change nothing); the script says whether they are.

One at a time, ``generate`` runs on the backend's generation thread; ``generate_batch``
runs ``model.generate`` on the calling thread. torch's thread pools then differ by a few
percent (see ``bench_transformers.py``), far below the ratio measured here.

Goal: batched / one at a time >= 3x on 2 cores. ``--batch-size N`` (default: the
backend's, 8) and ``--threads N`` (default: torch's, one per core) change the set-up.
"""

from __future__ import annotations

import argparse
import os
import time

from _util import REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))

MODEL = "smollm2-135m-instruct"
NEW_TOKENS = 32
ROUNDS = 2
TOPICS = [
    "Paris",
    "the ocean",
    "a dragon who learns to fly",
    "the history of bread",
    "how bees make honey",
    "a robot in a library",
    "the first trip to the moon",
    "autumn",
]
PROMPTS = [f"Write a short story about {t}." for t in TOPICS] + [
    f"Describe {t} in detail for a curious child, with examples, in several paragraphs."
    for t in TOPICS
]


def one_at_a_time(backend: object) -> tuple[float, list[str], int]:
    start = time.perf_counter()
    answers = [
        backend.generate(p, MODEL, temperature=0, max_tokens=NEW_TOKENS)  # type: ignore[attr-defined]
        for p in PROMPTS
    ]
    elapsed = time.perf_counter() - start
    tokens = sum(a.completion_tokens for a in answers)
    return tokens / elapsed, [a.text for a in answers], tokens


def batched(backend: object) -> tuple[float, list[str], int]:
    start = time.perf_counter()
    answers = backend.generate_batch(PROMPTS, MODEL, temperature=0, max_tokens=NEW_TOKENS)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - start
    assert all(a.error is None for a in answers), [a.error for a in answers]
    tokens = sum(a.completion_tokens for a in answers)
    return tokens / elapsed, [a.text for a in answers], tokens


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    import torch

    from localmind_jupyter.backends.transformers import TransformersBackend

    settings: dict[str, int] = {}
    if args.batch_size:
        settings["batch_size"] = args.batch_size
    if args.threads:
        settings["threads"] = args.threads
    backend = TransformersBackend(settings)
    backend.load_model(MODEL)
    backend.generate(PROMPTS[0], MODEL, temperature=0, max_tokens=4)  # warm-up
    backend.generate_batch(PROMPTS[:2], MODEL, temperature=0, max_tokens=4)
    load_before = os.getloadavg()
    single_runs, batch_runs = [], []
    for index in range(ROUNDS):
        sides = [(one_at_a_time, single_runs), (batched, batch_runs)]
        for side, runs in sides if index % 2 == 0 else sides[::-1]:
            runs.append(side(backend))
    load_after = os.getloadavg()
    single, batch = max(single_runs), max(batch_runs)
    same = all(r[1] == single_runs[0][1] for r in single_runs + batch_runs)
    ratio = batch[0] / single[0]
    print(
        f"Transformers, bundled SmolLM2-135M, greedy, {len(PROMPTS)} prompts x up to "
        f"{NEW_TOKENS} new tokens, batch_size {backend.batch_size}, "
        f"{torch.get_num_threads()} torch threads, best of {ROUNDS} rounds per side"
    )
    print(f"  one generate at a time: {single[0]:6.2f} tokens/s ({single[2]} tokens)")
    print(f"  generate_batch:         {batch[0]:6.2f} tokens/s ({batch[2]} tokens)")
    print(f"  ratio batched/one at a time: {ratio:.2f}x (goal >= 3x on 2 cores)")
    print(f"  answers identical: {same}")
    print(
        "  load average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in load_after)
    )
    return {"single_tps": single[0], "batch_tps": batch[0], "ratio": ratio, "same": float(same)}


if __name__ == "__main__":
    main()
