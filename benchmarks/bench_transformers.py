"""The bundled model through the Transformers backend vs raw ``model.generate``.

Same model object, same prompt, greedy, same ``max_new_tokens`` (the prompt asks
for more text than that, so both make exactly as many tokens); rounds alternate.
Tokens/s = new tokens over wall time of the whole call. Goal: ours / raw >= 0.97.
Also: a cached load of the bundled model in a fresh process, goal under 1 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from _util import REPO

NEW_TOKENS = 48
ROUNDS = 5
PROMPT = "Write a short paragraph about the history of Paris."

LOAD_PROBE = """
import json, time
import torch, transformers  # imports are not what we time
from localmind_jupyter.backends.transformers import TransformersBackend
backend = TransformersBackend({})
t = time.perf_counter()
backend.load_model("smollm2-135m-instruct")
print(json.dumps({"load": time.perf_counter() - t}))
"""


def cached_load_seconds(runs: int = 3) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", LOAD_PROBE], env=env, capture_output=True, text=True, check=True
        )
        times.append(json.loads(out.stdout.strip().splitlines()[-1])["load"])
    return sorted(times)[len(times) // 2]


def main() -> dict[str, float]:
    import torch

    from localmind_jupyter.backends.transformers import TransformersBackend

    backend = TransformersBackend({})
    backend.load_model("smollm2-135m-instruct")  # converts on the very first run
    loaded = backend._get_loaded("smollm2-135m-instruct")
    model, tokenizer = loaded.model, loaded.tokenizer
    messages = [{"role": "user", "content": PROMPT}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )

    def raw() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
        elapsed = time.perf_counter() - start
        made = out.shape[-1] - inputs["input_ids"].shape[-1]
        assert made == NEW_TOKENS, made
        return made / elapsed

    def ours() -> float:
        start = time.perf_counter()
        stream = backend.generate_stream(PROMPT, "smollm2-135m-instruct", max_tokens=NEW_TOKENS)
        for _ in stream:
            pass
        elapsed = time.perf_counter() - start
        assert stream.response.completion_tokens == NEW_TOKENS, stream.response
        return NEW_TOKENS / elapsed

    raw(), ours()  # warm up
    raw_tps, our_tps = [], []
    for round_ in range(ROUNDS):
        order = [(raw, raw_tps), (ours, our_tps)]
        for run, results in order if round_ % 2 == 0 else order[::-1]:
            results.append(run())
    best_raw, best_ours = max(raw_tps), max(our_tps)
    load = cached_load_seconds()
    print(f"Transformers, bundled SmolLM2-135M, greedy, {NEW_TOKENS} new tokens, best of {ROUNDS}")
    print(f"  raw model.generate:              {best_raw:6.2f} tokens/s")
    print(f"  TransformersBackend (streamed):  {best_ours:6.2f} tokens/s")
    print(f"  ratio ours/raw: {best_ours / best_raw:.3f} (goal >= 0.97)")
    print(f"  cached load of the bundled model (fresh process): {load:.2f} s (goal < 1 s)")
    return {"raw_tps": best_raw, "ours_tps": best_ours, "ratio": best_ours / best_raw, "load": load}


if __name__ == "__main__":
    main()
