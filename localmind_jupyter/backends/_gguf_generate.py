"""The GGUF generation loop: llama.cpp computes in the reading thread, one token per ``next()``.

Leaving the loop, closing the stream or dropping it closes the llama.cpp iterator, so
nothing is computed after the consumer has gone. The prompt is evaluated in chunks of
``_PREFILL_CHUNK`` tokens, so ``stream.cancel()`` from another thread stops a long prompt
pass within one chunk. llama_cpp is imported when the first model loads.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError
from ._gguf_files import Source
from ._local_engine import sampling
from ._prefill import GenerationCancelled
from ._stream import Delta, Usage

if TYPE_CHECKING:
    from ._request import GenerationRequest

#: Prompt tokens evaluated between two cancel checks: 0.1-0.4 s for the bundled model on two
#: busy cores, and as fast in total as llama.cpp's own 512-token batches (measured).
_PREFILL_CHUNK = 64


@dataclass
class Counts:
    """Tokens of one generation, counted where llama.cpp samples them."""

    prompt: int | None = None
    #: The prompt's token ids as llama.cpp received them (tests read what was rendered).
    prompt_ids: tuple[int, ...] = ()
    completion: int = 0
    closed: bool = False


@dataclass
class Loaded:
    """A ``Llama`` ready to generate; one generation at a time (llama.cpp state is shared)."""

    source: Source
    llama: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    owner: int | None = None
    #: Counts of the latest generation (tests and diagnostics read them).
    last_counts: Counts | None = None
    #: The chat template as llama-cpp-python renders it, for ``think`` (``_gguf_think``).
    formatter: Any = None
    #: The chat handler with the model's projector loaded; None for a text-only model.
    vision: Any = None


# --- the generation loop --------------------------------------------------------------------------
def generate(
    loaded: Loaded,
    chunks: Generator[dict[str, Any], None, None],
    n_ctx: int,
    cancel: threading.Event,
) -> Generator[Delta, None, None]:
    """Relay llama.cpp's chunks, chat (``delta``) or completion (``text``) ones; on the way
    out, always close its iterator."""
    me = threading.get_ident()
    if loaded.owner == me:
        chunks.close()
        raise GenerationError(
            "another stream of this model is still open in this thread; read it to the end "
            "or close() it before starting the next"
        )
    counts = Counts()
    usage = Usage(finish_reason="stop")
    with loaded.lock:
        loaded.owner = me
        loaded.last_counts = counts
        loaded.llama.localmind_counts = counts
        loaded.llama.localmind_cancel = cancel
        try:
            yield usage  # updated in place: a cancelled answer still says what it cost
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content") if "delta" in choice else choice["text"]
                if text:
                    yield text
                if choice.get("finish_reason"):
                    usage.finish_reason = choice["finish_reason"]
        except GenerationCancelled:
            usage.finish_reason = "cancelled"  # stream.cancel(), with the partial answer
        except (ValueError, RuntimeError, OSError) as exc:
            message = str(exc)
            if "exceed context window" in message or "exceeds n_ctx" in message:
                message += f"; shorten the prompt or raise the n_ctx setting (now {n_ctx})"
            raise GenerationError(f"llama.cpp failed: {message}") from exc
        finally:
            chunks.close()  # stops llama.cpp: nothing is sampled after this
            counts.closed = True
            usage.prompt_tokens, usage.completion_tokens = counts.prompt, counts.completion
            loaded.llama.localmind_counts = None
            loaded.llama.localmind_cancel = None
            loaded.owner = None


def sampling_kwargs(opts: GenerationRequest) -> dict[str, Any]:
    """llama.cpp arguments for the shared greedy-or-sample rule (``_local_engine.sampling``).

    llama-cpp-python's own defaults (top_k 40, min_p 0.05, temperature 0.2) are switched
    off so that the options mean the same on every backend.
    """
    kwargs: dict[str, Any] = {
        "top_k": 0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repeat_penalty": 1.0,
        "top_p": 1.0,
        "temperature": 0.0,
    }
    plan = sampling(opts)
    if plan is None:
        return kwargs
    kwargs["temperature"] = plan.temperature
    kwargs["top_p"] = plan.top_p
    # Without a seed llama-cpp-python derives one from the previous call's: ``plan`` has one.
    kwargs["seed"] = plan.seed
    return kwargs


_llama_classes: dict[str, type] = {}


def counting_llama_class() -> type:
    """``llama_cpp.Llama`` that counts prompt and sampled tokens of each generation.

    Streamed chat completions carry no ``usage``; counting at ``generate`` is exact
    (the tokens llama.cpp samples, the end-of-text token included, as Transformers counts)
    and costs one Python step per token.
    """
    cls = _llama_classes.get("llama")
    if cls is None:
        from llama_cpp import Llama

        class _CountingLlama(Llama):
            localmind_counts: Counts | None = None
            localmind_cancel: threading.Event | None = None

            def eval(self, tokens: Any) -> None:
                # llama_decode cannot be stopped from Python: check between short chunks.
                cancel = self.localmind_cancel
                for start in range(0, len(tokens), _PREFILL_CHUNK):
                    if cancel is not None and cancel.is_set():
                        raise GenerationCancelled
                    super().eval(tokens[start : start + _PREFILL_CHUNK])

            def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
                inner = super().generate(tokens, *args, **kwargs)
                counts = self.localmind_counts
                if counts is None:
                    return inner
                return _counting(inner, counts, tokens)

        cls = _llama_classes["llama"] = _CountingLlama
    return cls


def _counting(inner: Generator[int, Any, None], counts: Counts, prompt: Any) -> Iterator[int]:
    counts.prompt, counts.prompt_ids = len(prompt), tuple(int(t) for t in prompt)
    try:
        for token in inner:
            counts.completion += 1
            yield token
    finally:
        inner.close()
