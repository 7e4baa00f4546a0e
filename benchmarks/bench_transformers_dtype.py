"""The bundled model through the Transformers backend: float32 against bfloat16 on the CPU.

The issue asked whether bfloat16 beats float32 on CPUs with AVX512-BF16 or AMX. Both
dtypes decode the same prompts greedily in one run (each in its own fresh process, in
turn, so neither shares the other's OpenMP pool), and the script prints tokens/s, the
ratio bf16/fp32, the CPU's flags and whether the greedy answers are identical.
The backend's ``dtype: auto`` stays float32 on the CPU unless bf16 is faster *and*
answers the same (docs/performance.md has the figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _util import REPO

NEW_TOKENS = 48
PROCESSES = 2  # per dtype
CALLS = 3  # timed calls per process, after one warm-up
PROMPTS = [
    "Write a short paragraph about the history of Paris.",
    "What is 2 + 2? Answer in one word.",
    "Name three colours.",
]

SIDE = """
import json, sys, time
from localmind_jupyter.backends.transformers import TransformersBackend
backend = TransformersBackend({{"dtype": sys.argv[1]}})
backend.load_model("smollm2-135m-instruct")

def answer(prompt):
    stream = backend.generate_stream(prompt, "smollm2-135m-instruct", max_tokens={n}, temperature=0)
    text = "".join(stream)
    return text, stream.response.completion_tokens

answers = [answer(p)[0] for p in {prompts!r}]
answer({prompts!r}[0])  # warm-up
best = 0.0
for _ in range({calls}):
    start = time.perf_counter()
    _, made = answer({prompts!r}[0])
    best = max(best, made / (time.perf_counter() - start))
print(json.dumps({{"tps": best, "answers": answers}}))
"""


def cpu_flags() -> set[str]:
    """The flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def side(dtype: str) -> dict[str, object]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    code = SIDE.format(n=NEW_TOKENS, calls=CALLS, prompts=PROMPTS)
    out = subprocess.run(
        [sys.executable, "-c", code, dtype], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> dict[str, object]:
    flags = cpu_flags()
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    runs: dict[str, list[dict[str, object]]] = {"float32": [], "bfloat16": []}
    for index in range(PROCESSES):
        order = ["float32", "bfloat16"] if index % 2 == 0 else ["bfloat16", "float32"]
        for dtype in order:
            runs[dtype].append(side(dtype))
    fp32 = max(float(r["tps"]) for r in runs["float32"])  # type: ignore[arg-type]
    bf16 = max(float(r["tps"]) for r in runs["bfloat16"])  # type: ignore[arg-type]
    same = runs["float32"][0]["answers"] == runs["bfloat16"][0]["answers"]
    print(
        f"Transformers, bundled SmolLM2-135M on the CPU, greedy, {NEW_TOKENS} new tokens, "
        f"best of {PROCESSES} processes x {CALLS} calls per dtype"
    )
    print("  CPU flags: " + ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in wanted))
    print(f"  float32:   {fp32:6.2f} tokens/s")
    print(f"  bfloat16:  {bf16:6.2f} tokens/s")
    print(f"  ratio bf16/fp32: {bf16 / fp32:.3f}")
    print(f"  greedy answers identical on {len(PROMPTS)} prompts: {'yes' if same else 'no'}")
    if not same:
        fp32_answers: list[str] = runs["float32"][0]["answers"]  # type: ignore[assignment]
        bf16_answers: list[str] = runs["bfloat16"][0]["answers"]  # type: ignore[assignment]
        for a, b in zip(fp32_answers, bf16_answers, strict=True):
            print(f"    fp32: {a!r:.70}\n    bf16: {b!r:.70}")
    return {"fp32_tps": fp32, "bf16_tps": bf16, "ratio": bf16 / fp32, "identical": same}


if __name__ == "__main__":
    main()
