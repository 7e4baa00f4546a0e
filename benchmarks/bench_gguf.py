"""The bundled model through the gguf (llama.cpp) backend vs raw ``llama_cpp.Llama``,
and the same prompt through the Transformers backend, to show the gap users gain.

Same GGUF file (SmolLM2-135M-Instruct Q4_1), same prompt, greedy, same ``max_tokens``
(the prompt asks for more text than that, so every side makes exactly as many tokens)
and the same llama.cpp settings (n_ctx 2048, llama-cpp-python's default threads unless
``--threads N``). Raw is the non-streamed ``create_chat_completion``, the fastest way to
call llama-cpp-python; ours is the backend's stream read to the end. Tokens/s = new tokens
over the wall time of the whole call (prompt evaluation included). Goal: ours / raw >= 0.97.

Each side runs in its own fresh process, alternating, so neither inherits the other's
thread pools or warmed caches. Usage: ``python benchmarks/bench_gguf.py [--threads N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _util import REPO

NEW_TOKENS = 64
PROCESSES = 3  # per llama.cpp side
CALLS = 5  # timed calls per process, after one warm-up
TRANSFORMERS_CALLS = 2  # ~10 tokens/s: a few calls are enough to show the gap
PROMPT = "Write a long story about a dragon who learns to fly."

SIDE = """
import json, sys, time
name, threads = sys.argv[1], (int(sys.argv[2]) or None)
settings = {{"n_ctx": 2048}}
if threads:
    settings["n_threads"] = threads
messages = [{{"role": "user", "content": {prompt!r}}}]
calls = {calls}
t = time.perf_counter()
if name == "raw":
    import llama_cpp
    from localmind_jupyter.backends import _embedded
    llama = llama_cpp.Llama(
        model_path=str(_embedded.embedded_model_path()), chat_format=None, verbose=False,
        **settings,
    )
    load = time.perf_counter() - t

    def run():
        start = time.perf_counter()
        out = llama.create_chat_completion(
            messages, max_tokens={n}, temperature=0.0, top_k=0, min_p=0.0, top_p=1.0,
            typical_p=1.0, repeat_penalty=1.0,
        )
        made = out["usage"]["completion_tokens"]
        assert made == {n}, made
        return made / (time.perf_counter() - start), None
else:
    if name == "ours":
        from localmind_jupyter.backends.gguf import GGUFBackend
        backend = GGUFBackend(settings)
    else:
        from localmind_jupyter.backends.transformers import TransformersBackend
        backend = TransformersBackend({{}})
        calls = {transformers_calls}
    backend.load_model("smollm2-135m-instruct")
    load = time.perf_counter() - t

    def run():
        start = time.perf_counter()
        stream = backend.generate_stream({prompt!r}, "smollm2-135m-instruct", max_tokens={n})
        for _ in stream:
            pass
        made = stream.response.completion_tokens
        assert made == {n}, stream.response
        return made / (time.perf_counter() - start), stream.response.time_to_first_token

run()
results = [run() for _ in range(calls)]
best = max(r[0] for r in results)
ttfts = sorted(r[1] for r in results if r[1] is not None)
ttft = ttfts[len(ttfts) // 2] if ttfts else None
print(json.dumps({{"tps": best, "load": load, "ttft": ttft}}))
"""


def side(name: str, threads: int) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))
    code = SIDE.format(
        prompt=PROMPT, n=NEW_TOKENS, calls=CALLS, transformers_calls=TRANSFORMERS_CALLS
    )
    out = subprocess.run(
        [sys.executable, "-c", code, name, str(threads)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} side failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(threads: int = 0, with_transformers: bool = True) -> dict[str, float]:
    raw_runs, our_runs = [], []
    for index in range(PROCESSES):
        order = [("raw", raw_runs), ("ours", our_runs)]
        for name, runs in order if index % 2 == 0 else order[::-1]:
            runs.append(side(name, threads))
    best_raw = max(r["tps"] for r in raw_runs)
    best_ours = max(r["tps"] for r in our_runs)
    loads = sorted(r["load"] for r in our_runs)
    ttfts = sorted(r["ttft"] for r in our_runs)
    shown_threads = threads or "llama-cpp-python default"
    print(
        f"llama.cpp, bundled SmolLM2-135M Q4_1, greedy, {NEW_TOKENS} new tokens, "
        f"n_threads {shown_threads}, best of {PROCESSES} processes x {CALLS} calls per side"
    )
    print("| side | tokens/s | vs raw llama.cpp |")
    print("|---|---|---|")
    print(f"| raw llama_cpp.Llama.create_chat_completion | {best_raw:.1f} | 1.000 |")
    print(f"| GGUFBackend (streamed) | {best_ours:.1f} | {best_ours / best_raw:.3f} |")
    result = {"raw_tps": best_raw, "ours_tps": best_ours, "ratio": best_ours / best_raw}
    if with_transformers:
        tf = side("transformers", threads)
        print(
            f"| TransformersBackend (float32, streamed) | {tf['tps']:.1f} | "
            f"{tf['tps'] / best_raw:.3f} |"
        )
        result["transformers_tps"] = tf["tps"]
        print(f"gguf backend is {best_ours / tf['tps']:.1f}x faster than the Transformers backend")
    print(f"ratio ours/raw: {best_ours / best_raw:.3f} (goal >= 0.97)")
    print(
        f"gguf backend: load of the bundled model {loads[len(loads) // 2]:.2f} s median, "
        f"time to first token {ttfts[len(ttfts) // 2] * 1000:.0f} ms median"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="n_threads (0: default)")
    parser.add_argument("--no-transformers", action="store_true", help="skip that side")
    args = parser.parse_args()
    main(args.threads, not args.no_transformers)
