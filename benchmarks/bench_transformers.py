"""The bundled model through the Transformers backend vs raw ``model.generate``.

Same converted model, same prompt, greedy, same ``max_new_tokens`` (the prompt asks
for more text than that, so both make exactly as many tokens). Tokens/s = new
tokens over the wall time of the whole call.

Each side runs in its own fresh process, alternating: torch's OpenMP thread pool
belongs to the thread that first runs torch work, so timing a main-thread baseline
and a worker-thread backend *in one process* measures the two pools disturbing each
other (a few percent either way), not the backend. Goal: ours / raw >= 0.97.

Also the load of the bundled model from its converted cache in a fresh process,
after ``import torch`` and the Llama model and tokenizer classes (import time is the
same for any transformers user and is reported apart). Goal: under 1 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from _util import REPO

NEW_TOKENS = 48
PROCESSES = 3  # per side
CALLS = 3  # timed calls per process, after one warm-up
PROMPT = "Write a short paragraph about the history of Paris."

SIDE = """
import json, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
from transformers import PreTrainedTokenizerFast
imports = time.perf_counter() - t0
from localmind_jupyter.backends.transformers import TransformersBackend
backend = TransformersBackend({{}})
t = time.perf_counter()
backend.load_model("smollm2-135m-instruct")
load = time.perf_counter() - t
loaded = backend._get_loaded("smollm2-135m-instruct")
model, tokenizer = loaded.model, loaded.tokenizer
inputs = tokenizer.apply_chat_template(
    [{{"role": "user", "content": {prompt!r}}}],
    add_generation_prompt=True, return_dict=True, return_tensors="pt",
)

def raw():
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens={n}, do_sample=False)
    made = out.shape[-1] - inputs["input_ids"].shape[-1]
    assert made == {n}, made
    return made / (time.perf_counter() - start)

def ours():
    start = time.perf_counter()
    stream = backend.generate_stream({prompt!r}, "smollm2-135m-instruct", max_tokens={n})
    for _ in stream:
        pass
    assert stream.response.completion_tokens == {n}, stream.response
    return {n} / (time.perf_counter() - start)

run = raw if sys.argv[1] == "raw" else ours
run()
best = max(run() for _ in range({calls}))
print(json.dumps({{"tps": best, "load": load, "imports": imports}}))
"""


def side(name: str) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    code = SIDE.format(prompt=PROMPT, n=NEW_TOKENS, calls=CALLS)
    out = subprocess.run(
        [sys.executable, "-c", code, name], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> dict[str, float]:
    side("ours")  # converts the bundled model on the very first run
    raw_runs, our_runs = [], []
    for index in range(PROCESSES):
        order = [("raw", raw_runs), ("ours", our_runs)]
        for name, runs in order if index % 2 == 0 else order[::-1]:
            runs.append(side(name))
    best_raw = max(r["tps"] for r in raw_runs)
    best_ours = max(r["tps"] for r in our_runs)
    loads = sorted(r["load"] for r in raw_runs + our_runs)
    imports = sorted(r["imports"] for r in raw_runs + our_runs)
    load, imported = loads[len(loads) // 2], imports[len(imports) // 2]
    print(
        f"Transformers, bundled SmolLM2-135M, greedy, {NEW_TOKENS} new tokens, "
        f"best of {PROCESSES} processes x {CALLS} calls per side"
    )
    print(f"  raw model.generate:              {best_raw:6.2f} tokens/s")
    print(f"  TransformersBackend (streamed):  {best_ours:6.2f} tokens/s")
    print(f"  ratio ours/raw: {best_ours / best_raw:.3f} (goal >= 0.97)")
    print(f"  load of the bundled model from its cache: {load:.2f} s median (goal < 1 s)")
    print(f"  (import torch + transformers model classes first: {imported:.2f} s)")
    return {"raw_tps": best_raw, "ours_tps": best_ours, "ratio": best_ours / best_raw, "load": load}


if __name__ == "__main__":
    main()
