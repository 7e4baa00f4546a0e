"""Constrained vs unconstrained decoding on the bundled model: what a schema costs per token.

The same prompts, greedy, through one backend's generic API (``generate_stream``): once
free, once with ``schema=``. The two answers differ in length, so the rate compared is the
decoding rate, tokens after the first over the time after the first (the prompt pass is the
same either way); the whole-call rate is printed too. Best of ``ROUNDS`` per prompt.

Usage: ``python benchmarks/bench_structured.py [--backend gguf|transformers]``. Any backend
whose capabilities list ``json_schema`` works: the script names no engine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from _util import REPO, median

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))

MODEL = "smollm2-135m-instruct"
ROUNDS = 3
MAX_TOKENS = 96
CAPITAL = {
    "type": "object",
    "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
    "required": ["capital", "population_millions"],
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
        "hobbies": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age", "city", "hobbies"],
}
CASES: list[tuple[str, dict[str, Any]]] = [
    ("Give the capital and population of France as JSON.", CAPITAL),
    ("Describe Maria, 34, a nurse from Lisbon who likes surfing and chess, as JSON.", PERSON),
    ("Give the capital and population of Japan as JSON.", CAPITAL),
]


def one(backend: Any, prompt: str, schema: dict[str, Any] | None) -> tuple[float, float, int]:
    """(decode tokens/s, whole-call tokens/s, tokens) of one greedy answer."""
    options: dict[str, Any] = {"temperature": 0, "max_tokens": MAX_TOKENS}
    if schema is not None:
        options["schema"] = schema
    start = time.perf_counter()
    stream = backend.generate_stream(prompt, MODEL, **options)
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    response = stream.response
    made = response.completion_tokens or 0
    decode = (made - 1) / (end - first) if first is not None and made > 1 else 0.0
    return decode, made / (end - start), made


def main(backend_name: str = "gguf") -> dict[str, float]:
    sys.path.insert(0, str(REPO))
    from localmind_jupyter.backends import backend_class

    backend = backend_class(backend_name)()
    if not backend.model_capabilities(MODEL).json_schema:
        raise SystemExit(f"the {backend_name} backend cannot enforce a schema (json_schema)")
    backend.load_model(MODEL)
    one(backend, "Hello", None)  # warm-up
    rows = []
    for prompt, schema in CASES:
        free = [one(backend, prompt, None) for _ in range(ROUNDS)]
        held = [one(backend, prompt, schema) for _ in range(ROUNDS)]
        rows.append((prompt, max(free), max(held)))
    print(
        f"{backend.display_name}, bundled SmolLM2-135M, greedy, max_tokens {MAX_TOKENS}, "
        f"best of {ROUNDS} per prompt; decode tokens/s = tokens after the first / time after it"
    )
    print("| prompt | free tok/s (tokens) | schema tok/s (tokens) | schema/free (decode) |")
    print("|---|---|---|---|")
    ratios, whole = [], []
    for prompt, free, held in rows:
        ratio = held[0] / free[0]
        ratios.append(ratio)
        whole.append(held[1] / free[1])
        print(
            f"| {prompt[:44]}… | {free[0]:.1f} ({free[2]}) | {held[0]:.1f} ({held[2]}) "
            f"| {ratio:.2f} |"
        )
    result = {"decode_ratio": median(ratios), "call_ratio": median(whole)}
    print(
        f"median constrained/unconstrained decode ratio: {result['decode_ratio']:.2f}; "
        f"whole-call ratio: {result['call_ratio']:.2f}"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="gguf", help="a backend type (gguf, transformers)")
    main(parser.parse_args().backend)
