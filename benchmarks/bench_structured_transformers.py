"""Constrained (``schema=``, llguidance) vs unconstrained decoding, bundled model, Transformers.

Same backend, same prompt, greedy, same ``max_tokens``: the schema is one long string
field (``{"story": string}``, at least 1000 characters) so the constrained answer runs as
long as the free one and both make exactly ``NEW_TOKENS`` tokens. Tokens/s = new tokens
over the wall time of the whole call (the prompt pass and the matcher copy included).
Calls alternate in one process (best of ``CALLS`` each), after a warm-up of each that
also builds llguidance's tokenizer and compiles the schema (cached per loaded model,
reported apart).

The mask's own cost per token is timed apart: the constrained answer's tokens replayed
through a fresh mask, so the figure is the mask alone, without the model.
Goal: constrained / unconstrained >= 0.95.
"""

from __future__ import annotations

import os
import time

from _util import REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))

NEW_TOKENS = 48
CALLS = 3
MODEL = "smollm2-135m-instruct"
PROMPT = "Write a long story about a dragon who learns to fly, as JSON with a story field."
#: minLength keeps the string open, so the constrained answer also runs to NEW_TOKENS.
SCHEMA = {
    "type": "object",
    "properties": {"story": {"type": "string", "minLength": 1000}},
    "required": ["story"],
}


def timed(backend: object, **options: object) -> tuple[float, str]:
    from localmind_jupyter.errors import GenerationError

    start = time.perf_counter()
    stream = backend.generate_stream(PROMPT, MODEL, max_tokens=NEW_TOKENS, **options)  # type: ignore[attr-defined]
    try:
        for _ in stream:
            pass
    except GenerationError:
        pass  # the constrained JSON is cut at max_tokens, on purpose: not valid yet
    elapsed = time.perf_counter() - start
    response = stream.response
    assert response is not None and response.completion_tokens == NEW_TOKENS, response
    return NEW_TOKENS / elapsed, response.text


def mask_ms_per_token(backend: object, text: str) -> float:
    """Replay ``text``'s tokens through a fresh mask: milliseconds per token, mask alone."""
    import torch

    from localmind_jupyter.backends._request import GenerationRequest
    from localmind_jupyter.backends._transformers_constrain import constraint_for

    loaded = backend._get_loaded(MODEL)  # type: ignore[attr-defined]
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    mask = constraint_for(GenerationRequest.build("", MODEL, {"schema": SCHEMA}), loaded)
    assert mask is not None
    scores = torch.zeros(1, loaded.model.config.vocab_size)
    context = torch.tensor([[0]])
    start = time.perf_counter()
    for token in ids:
        mask(context, scores)
        context = torch.tensor([[token]])
    return (time.perf_counter() - start) * 1000 / len(ids)


def main() -> dict[str, float]:
    from localmind_jupyter.backends.transformers import TransformersBackend

    backend = TransformersBackend()
    backend.load_model(MODEL)
    timed(backend)
    start = time.perf_counter()
    _, text = timed(backend, schema=SCHEMA)  # builds llguidance's tokenizer, compiles once
    first = time.perf_counter() - start
    free, held = [], []
    for _ in range(CALLS):
        free.append(timed(backend)[0])
        held.append(timed(backend, schema=SCHEMA)[0])
    best_free, best_held = max(free), max(held)
    mask_ms = mask_ms_per_token(backend, text)
    print(
        f"Transformers, bundled SmolLM2-135M, greedy, {NEW_TOKENS} new tokens, "
        f"best of {CALLS} alternating calls per side"
    )
    print(f"  unconstrained:               {best_free:6.2f} tokens/s")
    print(f"  schema= (llguidance mask):   {best_held:6.2f} tokens/s")
    print(f"  ratio constrained/unconstrained: {best_held / best_free:.3f} (goal >= 0.95)")
    print(f"  the mask alone: {mask_ms:.3f} ms per token")
    print(f"  first constrained call (llguidance tokenizer + schema compiled): {first:.2f} s")
    return {"free_tps": best_free, "held_tps": best_held, "ratio": best_held / best_free}


if __name__ == "__main__":
    main()
