"""Constrained decoding for the Transformers backend: ``schema=`` and ``json_mode`` enforced.

A llguidance ``LLMatcher`` tracks the JSON grammar as the model writes; before each
token a logits processor masks every token the grammar does not allow, so the answer
cannot leave the schema (a 135M model asked nicely for JSON often does). Once the grammar
is complete only an end-of-sequence token is allowed, which ends the answer.

llguidance is imported on the first constrained answer only. What is slow is built once:
the llguidance view of the tokenizer (~0.4 s) per loaded model, the matcher for a schema
(~10 ms) per loaded model and schema; each answer takes a copy (microseconds). The mask
is written into a preallocated buffer and unpacked with numpy (~0.1-0.5 ms a token);
``llguidance.torch`` is not used: it ``torch.compile``s its kernel, seconds on a CPU.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, OptionError

if TYPE_CHECKING:
    from ._request import GenerationRequest
    from ._transformers_load import Loaded

__all__ = ["ConstraintMask", "closed_objects", "constraint_for"]

#: ``json_mode``: any JSON object, no schema.
ANY_OBJECT: dict[str, Any] = {"type": "object"}
#: Matchers kept per loaded model (one per schema seen recently).
_KEPT_PER_MODEL = 16

_lock = threading.Lock()


class _Grammars:
    """What one loaded model keeps for constrained decoding (stored on ``Loaded``)."""

    def __init__(self, tokenizer: Any, vocab: int) -> None:
        self.tokenizer = tokenizer
        #: Tokens the mask covers: the logits' width, or the tokenizer's when larger.
        self.vocab = vocab
        self.matchers: OrderedDict[str, Any] = OrderedDict()


def constraint_for(request: GenerationRequest, loaded: Loaded) -> ConstraintMask | None:
    """The logits processor enforcing the request's schema or JSON mode; None without either.

    A schema llguidance cannot compile (a regex with look-around, a ``$ref`` to nowhere...)
    raises ``OptionError`` naming the problem, before anything is generated.
    """
    if request.output_schema is not None:
        schema: dict[str, Any] = request.output_schema.json_schema
    elif request.json_mode:
        schema = ANY_OBJECT
    else:
        return None
    matcher, vocab = _template(loaded, schema)
    return ConstraintMask(matcher.deep_copy(), vocab)


def _template(loaded: Loaded, schema: dict[str, Any]) -> tuple[Any, int]:
    """The compiled matcher for ``schema`` on this model (compiled once, then copied)."""
    import llguidance

    key = json.dumps(schema, sort_keys=True)
    with _lock:
        grammars = loaded.grammars
        if grammars is None:
            vocab = max(_vocab_size(loaded), len(loaded.tokenizer))
            grammars = loaded.grammars = _Grammars(_ll_tokenizer(loaded, vocab), vocab)
        matcher = grammars.matchers.get(key)
        if matcher is not None:
            grammars.matchers.move_to_end(key)
            return matcher, grammars.vocab
    try:
        # The default whitespace_flexible=True matters: without it SmolLM2 writes digits
        # of a number forever (it cannot "see" a compact closing brace coming).
        grammar = llguidance.LLMatcher.grammar_from_json_schema(closed_objects(schema))
    except ValueError as exc:
        raise OptionError(f"schema cannot be compiled for constrained decoding: {exc}") from exc
    matcher = llguidance.LLMatcher(grammars.tokenizer, grammar, log_level=0)
    if matcher.is_error():
        raise OptionError(
            "schema cannot be compiled for constrained decoding (llguidance): "
            f"{_one_line(matcher.get_error())}; simplify that part of the schema"
        )
    with _lock:
        grammars.matchers[key] = matcher
        while len(grammars.matchers) > _KEPT_PER_MODEL:
            grammars.matchers.popitem(last=False)
    return matcher, grammars.vocab


def closed_objects(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` wherever an object lists properties.

    JSON Schema allows extra keys unless told otherwise; a small model then adds keys
    until ``max_tokens`` runs out. llama.cpp's grammar (the GGUF backend) closes such
    objects too, so both engines answer alike. The answer is still validated against
    the schema as given (a closed object is one of the objects it allows).
    """
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: closed_objects(value) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict) and not (
        "additionalProperties" in schema or "patternProperties" in schema
    ):
        out["additionalProperties"] = False
    return out


def _vocab_size(loaded: Loaded) -> int:
    """Rows of the model's logits (may exceed the tokenizer's vocabulary: padding rows)."""
    size = getattr(loaded.model.config, "vocab_size", None)
    return int(size) if isinstance(size, int) else len(loaded.tokenizer)


def _ll_tokenizer(loaded: Loaded, vocab: int) -> Any:
    import llguidance.hf

    try:
        return llguidance.hf.from_tokenizer(
            loaded.tokenizer,
            n_vocab=vocab,
            eos_token=sorted(loaded.eos_ids) or None,
        )
    except ValueError as exc:  # a slow (pure Python) tokenizer
        raise OptionError(
            f"schema needs a fast tokenizer for constrained decoding, and model "
            f"'{loaded.source.key}' has none ({exc})"
        ) from exc


class ConstraintMask:
    """A logits processor: the tokens the grammar forbids get -inf, before any sampling.

    Called once per step on the worker thread; the token chosen at step N is read from
    ``input_ids`` at step N+1 and fed to the matcher then.
    """

    def __init__(self, matcher: Any, vocab: int) -> None:
        import numpy as np

        self.matcher = matcher
        self.vocab = vocab
        self._np = np
        self._bits = np.zeros((vocab + 31) // 32, dtype=np.int32)
        self._prompt: int | None = None
        #: Seconds spent masking, for the benchmark.
        self.seconds = 0.0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import time

        import torch

        start = time.perf_counter()
        if self._prompt is None:
            self._prompt = int(input_ids.shape[-1])
        elif not self.matcher.consume_token(int(input_ids[0, -1])):
            raise GenerationError(self._failure())
        if self.matcher.is_error():
            raise GenerationError(self._failure())
        np, bits = self._np, self._bits
        self.matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
        forbidden = np.unpackbits(np.invert(bits.view(np.uint8)), bitorder="little")
        width = scores.shape[-1]
        drop = torch.from_numpy(forbidden[:width].view(np.bool_))
        if drop.shape[0] < width:  # logits rows beyond the grammar's vocabulary
            drop = torch.cat([drop, torch.ones(width - drop.shape[0], dtype=torch.bool)])
        # In place: generate hands each step a fresh float copy of the logits.
        scores.masked_fill_(drop.to(scores.device), float("-inf"))
        self.seconds += time.perf_counter() - start
        return scores

    def _failure(self) -> str:
        return (
            "constrained decoding failed mid-answer: "
            f"{_one_line(self.matcher.get_error()) or 'the grammar refused the token'}"
        )


def _one_line(error: str) -> str:
    """llguidance's messages span lines (a regex with a caret under it): keep them on one."""
    return " ".join(error.split())
