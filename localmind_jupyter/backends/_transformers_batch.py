"""Batched generation for the Transformers backend: up to ``batch_size`` prompts per step.

On a CPU a small model is memory-bound: a decoding step reads every weight once whatever
the batch, so eight sequences per step cost far less than eight steps. The prompts of a
chunk are padded on the LEFT (the tokenizer's pad token, else eos; the tokenizer itself is
never changed) with an attention mask, from which ``generate`` derives each row's
positions, so a row is computed as it would be alone; one ``model.generate`` per chunk.

Each row gets the answer a single generation gives: its tokens are decoded one by one as
the streamer does, split at ``<think>`` and cut at stop strings as the base cuts one
stream; a row that ended (eos, a stop string) is padded while the others go on. Greedy
answers are the same text (tests/test_transformers_batch.py); sampling draws each row
with its own generator, seeded as a single call would seed it.

Not batched (``batchable``): ``schema=``/``json_mode`` (the grammar holds one state per
sequence) and ``repetition_penalty`` (transformers would count a row's padding among its
tokens): those batches go one prompt at a time, as the base does.

Times: the rows of a chunk share its clock. ``time_to_first_token`` is the chunk's first
step (its whole prompt pass), ``duration`` runs to the row's own last token, tokens/s is
over the row's own steps, each of which computed the whole chunk.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._answer import budget_warning
from ._local_engine import check_context, sampling
from ._response import ModelResponse, Thinking, failed_response
from ._stops import StopMatcher
from ._think_tags import ThinkSplitter
from ._transformers_chat import encode
from ._transformers_generate import _describe_failure, _Sampler, engine_options

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._request import GenerationRequest
    from ._transformers_load import Loaded
    from .transformers import TransformersBackend

__all__ = ["batchable", "generate_batch"]

log = logging.getLogger(__name__)


def batchable(request: GenerationRequest) -> bool:
    """Whether padding prompts together leaves every row's answer as it is alone."""
    if request.output_schema is not None or request.json_mode:
        return False  # one grammar state per sequence: constrained decoding stays single
    return "repetition_penalty" not in request.extra  # it would penalise the padding too


class _Answer:
    """One row's text as a single stream gives it: the streamer's pieces, the ``<think>``
    split (twice when the template opened the trace, as ``deltas`` and the base do), then
    the stop strings, after which nothing more counts."""

    def __init__(self, opened: bool, stops: list[str]) -> None:
        self.splitters = [ThinkSplitter(opened=True)] if opened else []
        self.splitters.append(ThinkSplitter())
        self.matcher = StopMatcher(stops)
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.stopped = False

    def feed(self, piece: str, stream_end: bool = False) -> None:
        """A piece the streamer finalised (``TextStreamer.on_finalized_text``)."""
        if piece:
            self._through(0, [piece])

    def close(self) -> None:
        """The end of the stream: what each stage held back goes on, in order."""
        for level, splitter in enumerate(self.splitters):
            self._through(level + 1, splitter.flush())
        if not self.stopped:
            self.text.append(self.matcher.flush())

    def _through(self, level: int, items: list[str | Thinking]) -> None:
        for item in items:
            if self.stopped:
                return
            if isinstance(item, Thinking):
                self.thinking.append(item.text)
            elif level < len(self.splitters):
                self._through(level + 1, self.splitters[level].feed(item))
            else:
                self.text.append(self.matcher.feed(item))
                self.stopped = self.matcher.stopped


@dataclass
class _Row:
    """One prompt of the batch, from its encoding to its answer."""

    index: int
    request: GenerationRequest
    ids: Any  # the prompt's token ids, a 1-D tensor on the model's device
    answer: _Answer
    decoder: Any = None  # a TextStreamer feeding ``answer``
    tokens: int = 0
    done: bool = False
    eos: bool = False
    first: float | None = None
    last: float | None = None

    def take(self, torch: Any, token: int, now: float, eos_ids: frozenset[int]) -> None:
        """One generated token: counted and decoded, as the single path's streamer does."""
        self.tokens += 1
        self.first = self.first if self.first is not None else now
        self.last = now
        self.decoder.put(torch.tensor([token]))
        if token in eos_ids:
            self.done = self.eos = True
        elif self.answer.stopped:
            self.done = True


def generate_batch(
    backend: TransformersBackend,
    prompts: Sequence[str],
    model: str,
    cancel: threading.Event | None,
    options: dict[str, Any],
) -> list[ModelResponse]:
    """The batched ``generate_batch`` (its contract is ``BaseBackend.generate_batch``'s).

    Rows are sorted by prompt length (less padding) and answered in input order; a row
    that cannot start (a bad prompt, too long for the context) is its own error response.
    A chunk whose ``generate`` fails is answered again one prompt at a time, so a failure
    belongs to its row.
    """
    answers: list[ModelResponse | None] = [None] * len(prompts)
    requests: list[tuple[int, GenerationRequest]] = []
    for index, prompt in enumerate(prompts):
        try:
            requests.append((index, backend.build_request(prompt, model, **options)))
        except Exception as exc:  # noqa: BLE001 - one bad row must not sink the batch
            answers[index] = failed_response(backend.name, model, "error", exc)
    try:
        loaded = backend._get_loaded(model)
        torch = backend._torch()
    except Exception as exc:  # noqa: BLE001 - every row fails as it would alone
        for index, request in requests:
            _tell(backend, request, None, exc)
            answers[index] = failed_response(backend.name, model, "error", exc)
        return _filled(answers, backend.name, model)
    rows: list[_Row] = []
    for index, request in requests:
        try:
            rows.append(_prepare(index, request, loaded))
        except Exception as exc:  # noqa: BLE001 - the row's set-up error, told as alone
            _tell(backend, request, None, exc)
            answers[index] = failed_response(backend.name, model, "error", exc)
    rows.sort(key=lambda row: int(row.ids.shape[-1]))
    event = cancel if cancel is not None else threading.Event()
    size = max(1, backend.batch_size)
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        if event.is_set():
            for row in chunk:
                answers[row.index] = failed_response(backend.name, model, "cancelled", None)
            continue
        done = _run_chunk(backend, loaded, torch, chunk, event)
        if done is None:  # the batched pass failed: each row alone, with its own error
            for row in chunk:
                answers[row.index] = _alone(backend, row, event, options)
            continue
        for row, response in zip(chunk, done, strict=True):
            answers[row.index] = response
    return _filled(answers, backend.name, model)


def _filled(answers: list[ModelResponse | None], backend: str, model: str) -> list[ModelResponse]:
    return [a if a is not None else failed_response(backend, model, "error", None) for a in answers]


def _prepare(index: int, request: GenerationRequest, loaded: Loaded) -> _Row:
    """What ``deltas`` does before it starts: the chat template, the context check."""
    inputs, opened = encode(loaded, request.chat_messages(), request.think)
    ids = inputs["input_ids"][0]
    check_context(int(ids.shape[-1]), loaded.context, request.model)
    return _Row(index, request, ids, _Answer(opened, request.stop))


def _alone(
    backend: TransformersBackend, row: _Row, cancel: threading.Event, options: dict[str, Any]
) -> ModelResponse:
    model = row.request.model
    if cancel.is_set():
        return failed_response(backend.name, model, "cancelled", None)
    try:
        return backend.generate(row.request.prompt, model, **options)
    except Exception as exc:  # noqa: BLE001
        return failed_response(backend.name, model, "error", exc)


def _run_chunk(
    backend: TransformersBackend,
    loaded: Loaded,
    torch: Any,
    rows: list[_Row],
    cancel: threading.Event,
) -> list[ModelResponse] | None:
    """One padded ``generate`` for ``rows``; None when it failed (not when cancelled)."""
    from . import _prefill

    max_new_tokens = backend._max_new_tokens(rows[0].request)
    pad = _pad_id(loaded)
    width = max(int(row.ids.shape[-1]) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long, device=loaded.device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=loaded.device)
    for i, row in enumerate(rows):
        length = int(row.ids.shape[-1])
        ids[i, width - length :] = row.ids
        mask[i, width - length :] = 1
        row.decoder = _decoder(loaded.tokenizer, row.answer)
    gen_kwargs: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": mask,
        "max_new_tokens": max_new_tokens,
        "pad_token_id": pad,
        "stopping_criteria": _watch(torch, rows, cancel, loaded.eos_ids),
        **_sampling_kwargs(torch, rows, loaded.device),
    }
    start = time.perf_counter()
    try:
        with _prefill.cancel_scope(cancel):
            _prefill.prefill(loaded.model, gen_kwargs, cancel)  # a lone long prompt, chunked
            loaded.model.generate(**gen_kwargs)
    except _prefill.GenerationCancelled:
        pass  # within one module of the forward pass; the finished steps are kept
    except KeyboardInterrupt:
        for row in rows:
            _tell(backend, row.request, _response(backend, row, start, max_new_tokens), None)
        raise
    except Exception as exc:  # noqa: BLE001 - answered again one at a time
        log.info("batched generation failed, answering one at a time: %s", _describe_failure(exc))
        return None
    responses = [_response(backend, row, start, max_new_tokens) for row in rows]
    for row, response in zip(rows, responses, strict=True):
        _tell(backend, row.request, response, None)
    return responses


def _response(
    backend: TransformersBackend, row: _Row, start: float, max_new_tokens: int
) -> ModelResponse:
    """The row's answer once its chunk ended; not done and not full means cancelled."""
    row.decoder.end()  # the text the streamer held back, as at the end of one stream
    row.answer.close()
    if row.eos or row.answer.stopped:
        reason = "stop"
    elif row.tokens >= max_new_tokens:
        reason = "length"
    else:
        reason = "cancelled"
    end = row.last if row.last is not None else time.perf_counter()
    speed = None
    if row.first is not None and row.tokens > 1 and end > row.first:
        speed = (row.tokens - 1) / (end - row.first)
    response = ModelResponse(
        text="".join(row.answer.text),
        model=row.request.model,
        backend=backend.name,
        finish_reason=reason,
        prompt_tokens=int(row.ids.shape[-1]),
        completion_tokens=row.tokens,
        time_to_first_token=None if row.first is None else row.first - start,
        duration=end - start,
        tokens_per_second=speed,
        thinking="".join(row.answer.thinking) or None,
    )
    response.warning = budget_warning(response)
    return response


def _tell(
    backend: TransformersBackend,
    request: GenerationRequest,
    response: ModelResponse | None,
    error: BaseException | None,
) -> None:
    """``answer_sink`` once per row, as the base tells it for one generation."""
    sink = backend.answer_sink
    if sink is None:
        return
    try:
        sink(backend, request, response, error)
    except Exception:  # the answer matters more than its record
        log.exception("recording the answer failed")


def _pad_id(loaded: Loaded) -> int:
    pad = getattr(loaded.tokenizer, "pad_token_id", None)
    if isinstance(pad, int):
        return pad
    return min(loaded.eos_ids) if loaded.eos_ids else 0


def _sampling_kwargs(torch: Any, rows: list[_Row], device: Any) -> dict[str, Any]:
    """``sampling_kwargs``'s rule per row: greedy, or each row's own seeded generator."""
    kwargs: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    plans = [sampling(row.request) for row in rows]
    first = plans[0]
    if first is None:
        return kwargs
    from transformers import LogitsProcessorList

    generators = []
    for plan in plans:
        generator = torch.Generator(device=device)
        generator.manual_seed(plan.seed if plan is not None else 0)
        generators.append(generator)
    top_k = int(engine_options(rows[0].request.extra).get("top_k", 0))
    sampler = _RowSampler(torch, first.temperature, first.top_p, generators, top_k)
    kwargs["logits_processor"] = LogitsProcessorList([sampler])
    return kwargs


class _RowSampler(_Sampler):
    """``_Sampler`` drawing each row with its own generator (a seed means per prompt)."""

    def __init__(
        self, torch: Any, temperature: float, top_p: float, generators: list[Any], top_k: int
    ) -> None:
        super().__init__(torch, temperature, top_p, generators[0], top_k)
        self.generators = generators

    def draw(self, scores: Any) -> Any:
        torch = self.torch
        drawn = [
            torch.multinomial(scores[i : i + 1].softmax(dim=-1), num_samples=1, generator=g)
            for i, g in enumerate(self.generators)
        ]
        return torch.cat(drawn, dim=0)


# --- lazily built transformers classes ------------------------------------------------------------
_classes: dict[str, Any] = {}


def _decoder(tokenizer: Any, answer: _Answer) -> Any:
    """A ``TextStreamer`` (the single path's decoding) whose pieces go to ``answer``."""
    cls = _classes.get("decoder")
    if cls is None:
        from transformers import TextStreamer

        class _Decoder(TextStreamer):
            sink: Any = None

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                self.sink(text, stream_end)

        cls = _classes["decoder"] = _Decoder
    decoder = cls(tokenizer, skip_prompt=False, skip_special_tokens=True)
    decoder.sink = answer.feed
    return decoder


def _watch(torch: Any, rows: list[_Row], cancel: threading.Event, eos_ids: frozenset[int]) -> Any:
    """A criterion run after every step: takes each row's token, ends rows at eos or a stop
    string, and ends all of them once ``cancel`` is set."""
    cls = _classes.get("watch")
    if cls is None:
        from transformers import StoppingCriteria

        class _Watch(StoppingCriteria):
            def __init__(self, rows: list[_Row], cancel: threading.Event, eos: frozenset[int]):
                self.rows, self.cancel, self.eos = rows, cancel, eos

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                now = time.perf_counter()
                for row, token in zip(self.rows, input_ids[:, -1].tolist(), strict=True):
                    if not row.done:
                        row.take(torch, token, now, self.eos)
                stop = self.cancel.is_set()
                ended = [stop or row.done for row in self.rows]
                return torch.tensor(ended, dtype=torch.bool, device=input_ids.device)

        cls = _classes["watch"] = _Watch
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList([cls(rows, cancel, eos_ids)])
