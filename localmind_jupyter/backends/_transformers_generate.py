"""The Transformers generation loop: a worker thread runs ``generate``, the reader relays text.

``model.generate`` feeds a ``TextIteratorStreamer`` on a worker thread; the stream's
generator reads it. Closing the stream sets an event that a ``StoppingCriteria`` checks
after every token, and that hooks check inside the prompt pass (see ``_prefill``), so the
worker stops at the source within one layer. transformers is imported on first use.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, OptionError
from . import _prefill
from ._local_engine import sampling
from ._stream import Usage
from ._transformers_load import Loaded

if TYPE_CHECKING:
    from ._request import GenerationRequest

#: How long the reader waits for a piece before checking the worker is still alive.
_POLL_S = 0.5
#: How long closing a stream waits for the worker to finish its current step.
_JOIN_TIMEOUT_S = 5.0


@dataclass
class _WorkerState:
    """What the worker thread reports back to the reading generator."""

    error: BaseException | None = None


# --- the generation loop --------------------------------------------------------------------------
def generate(
    loaded: Loaded,
    gen_kwargs: dict[str, Any],
    streamer: Any,
    cancel: threading.Event,
    usage: Usage,
    max_new_tokens: int,
) -> Generator[str, None, None]:
    """Start the worker, relay its text, and always stop it on the way out."""
    state = _WorkerState()
    worker = threading.Thread(
        target=_generate_worker,
        args=(loaded.model, gen_kwargs, streamer, state, cancel),
        name="localmind-transformers-generate",
        daemon=True,
    )
    worker.start()
    try:
        while True:
            try:
                text = next(streamer)
            except StopIteration:
                break
            except queue.Empty:
                if worker.is_alive():
                    continue
                break  # the worker died without its end signal; handled below
            if text:
                yield text
        cancelled = isinstance(state.error, _prefill.GenerationCancelled)
        if state.error is not None and not cancelled:
            raise GenerationError(_describe_failure(state.error)) from state.error
        worker.join(_JOIN_TIMEOUT_S)
        if cancelled or cancel.is_set():
            usage.finish_reason = "cancelled"  # stream.cancel() from another thread
        else:
            usage.finish_reason = _finish_reason(streamer, loaded.eos_ids, max_new_tokens)
    finally:
        cancel.set()
        if worker.is_alive():
            worker.join(_JOIN_TIMEOUT_S)
        usage.completion_tokens = streamer.generated


def _generate_worker(
    model: Any,
    gen_kwargs: dict[str, Any],
    streamer: Any,
    state: _WorkerState,
    cancel: threading.Event,
) -> None:
    """Run ``generate``; on failure record the error and wake the reader with what was held back."""
    try:
        with _prefill.cancel_scope(cancel):
            _prefill.prefill(model, gen_kwargs, cancel)
            model.generate(**gen_kwargs)
    except BaseException as exc:  # noqa: BLE001 - everything must reach the reading thread
        state.error = exc
        try:
            streamer.end()  # flushes text the streamer held back, then the end signal
        except Exception:  # noqa: BLE001
            streamer.text_queue.put(streamer.stop_signal)


def _finish_reason(streamer: Any, eos_ids: frozenset[int], max_new_tokens: int) -> str:
    if streamer.last_token in eos_ids:
        return "stop"
    if streamer.generated >= max_new_tokens:
        return "length"
    return "stop"  # a stopping criterion of the model's own generation config


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, GenerationError):  # ours, already worded (a schema's mask failing)
        return str(exc)
    kind = type(exc).__name__
    if "OutOfMemory" in kind or "out of memory" in str(exc).lower():
        return (
            f"the model ran out of memory while generating ({kind}: {exc}); try a shorter "
            "prompt, a smaller max_tokens or a smaller model"
        )
    return f"generation failed: {kind}: {exc}"


def sampling_kwargs(
    torch: Any, opts: GenerationRequest, device: Any, constraint: Any = None
) -> dict[str, Any]:
    """``generate`` arguments for the shared greedy-or-sample rule (``_local_engine.sampling``).

    Sampling is done by our own logits processor with a private ``torch.Generator``
    rather than by ``do_sample=True``: transformers samples from the process-wide RNG,
    so a seed would need ``torch.manual_seed`` and a lock held for the whole generation
    to stay reproducible while other cells generate. A per-call generator needs neither.
    The model's own sampling defaults (top_k, min_p...) are deliberately not applied:
    the options mean the same on every backend. ``constraint`` (a schema's mask) runs
    first, so a draw can only pick a token the grammar allows. ``options={...}``:
    ``repetition_penalty`` goes to transformers' own processor, ``top_k`` to the sampler.
    """
    # Override the model's generation_config sampling fields, or transformers warns that
    # they are ignored by greedy decoding.
    kwargs: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    engine = engine_options(opts.extra)
    if "repetition_penalty" in engine:
        kwargs["repetition_penalty"] = engine["repetition_penalty"]
    processors = [] if constraint is None else [constraint]
    plan = sampling(opts)
    if plan is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(plan.seed)
        top_k = int(engine.get("top_k", 0))
        processors.append(_Sampler(torch, plan.temperature, plan.top_p, generator, top_k))
    if processors:
        kwargs["logits_processor"] = _logits_processor_list(processors)
    return kwargs


#: ``options={...}`` keys the Transformers backend takes (``extra_options``).
EXTRA_OPTIONS = frozenset({"repetition_penalty", "top_k"})


def engine_options(extra: dict[str, Any]) -> dict[str, Any]:
    """``repetition_penalty`` (a number > 0, 1 = off) and ``top_k`` (an int >= 0, 0 = off)."""
    out: dict[str, Any] = {}
    if "repetition_penalty" in extra:
        value = extra["repetition_penalty"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise OptionError(
                f"repetition_penalty must be a number > 0 (1.0 is off), got {value!r:.40}"
            )
        out["repetition_penalty"] = float(value)
    if "top_k" in extra:
        value = extra["top_k"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise OptionError(f"top_k must be an integer >= 0 (0 is off), got {value!r:.40}")
        out["top_k"] = value
    return out


class _Sampler:
    """A logits processor that draws the next token and leaves only it selectable.

    Runs after the model's own processors (repetition penalty...); greedy decoding then
    picks the drawn token. Temperature, then top-k, then top-p, then a multinomial draw:
    what ``do_sample=True`` does, minus the global RNG.
    """

    def __init__(
        self, torch: Any, temperature: float, top_p: float, generator: Any, top_k: int = 0
    ) -> None:
        self.torch = torch
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.generator = generator

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        scores = self.filtered(scores)
        token = self.draw(scores)
        return self.torch.full_like(scores, float("-inf")).scatter(-1, token, 0.0)

    def filtered(self, scores: Any) -> Any:
        """Temperature, top-k, top-p: row by row, so a batch filters each row as alone."""
        torch = self.torch
        if self.temperature != 1.0:
            scores = scores / self.temperature
        if 0 < self.top_k < scores.shape[-1]:
            kth = torch.topk(scores, self.top_k, dim=-1).values[..., -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if self.top_p < 1.0:
            ordered, order = torch.sort(scores, descending=True)
            probs = ordered.softmax(dim=-1)
            drop = probs.cumsum(dim=-1) - probs >= self.top_p  # keeps the token crossing top_p
            scores = scores.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
        return scores

    def draw(self, scores: Any) -> Any:
        """One token per row, drawn with this call's own generator."""
        probs = scores.softmax(dim=-1)
        return self.torch.multinomial(probs, num_samples=1, generator=self.generator)


# --- lazily built transformers helpers ------------------------------------------------------------
_helpers: dict[str, Any] = {}


def make_streamer(tokenizer: Any) -> Any:
    """A ``TextIteratorStreamer`` that also counts the tokens it is given."""
    cls = _helpers.get("streamer")
    if cls is None:
        from transformers import TextIteratorStreamer

        class _CountingStreamer(TextIteratorStreamer):
            """Counts generated tokens so the stats are exact even when stopped early."""

            generated = 0
            last_token: int | None = None

            def put(self, value: Any) -> None:
                if not (self.skip_prompt and self.next_tokens_are_prompt):
                    self.generated += int(value.numel())
                    if value.numel():
                        self.last_token = int(value.reshape(-1)[-1])
                super().put(value)  # type: ignore[no-untyped-call]

        cls = _helpers["streamer"] = _CountingStreamer
    return cls(tokenizer, skip_prompt=True, timeout=_POLL_S, skip_special_tokens=True)


def make_stopping_criteria(cancel: threading.Event) -> Any:
    """Stop after the current token once ``cancel`` is set (stream closed, stop string seen)."""
    cls = _helpers.get("criteria")
    if cls is None:
        import torch
        from transformers import StoppingCriteria

        class _EventStop(StoppingCriteria):
            def __init__(self, event: threading.Event) -> None:
                self.event = event

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full(
                    (input_ids.shape[0],),
                    self.event.is_set(),
                    dtype=torch.bool,
                    device=input_ids.device,
                )

        cls = _helpers["criteria"] = _EventStop
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList([cls(cancel)])


def _logits_processor_list(processors: Iterable[Any]) -> Any:
    from transformers import LogitsProcessorList

    return LogitsProcessorList(list(processors))
