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

``generate`` runs on a worker thread, as a single generation does, while the caller waits
and relays ``cancel``; the rows' own machinery is in ``_transformers_rows``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ._answer import budget_warning
from ._local_engine import check_context
from ._response import ModelResponse, failed_response
from ._transformers_chat import encode
from ._transformers_generate import _JOIN_TIMEOUT_S, _describe_failure
from ._transformers_rows import Answer, Row, decoder, sampling_kwargs, watch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._request import GenerationRequest
    from ._transformers_load import Loaded
    from .transformers import TransformersBackend

__all__ = ["batchable", "generate_batch"]

log = logging.getLogger(__name__)

#: The name of the thread a chunk generates on.
WORKER = "localmind-transformers-batch"
#: How often the waiting caller relays ``cancel`` into the forward pass's checks.
_RELAY_S = 0.02


def batchable(request: GenerationRequest) -> bool:
    """Whether padding prompts together leaves every row's answer as it is alone."""
    if request.output_schema is not None or request.json_mode:
        return False  # one grammar state per sequence: constrained decoding stays single
    if request.has_images:
        return False  # a vision prompt goes through the model's processor, one at a time
    return "repetition_penalty" not in request.extra  # it would penalise the padding too


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
    rows: list[Row] = []
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


def _prepare(index: int, request: GenerationRequest, loaded: Loaded) -> Row:
    """What ``deltas`` does before it starts: the chat template, the context check."""
    inputs, opened = encode(loaded, request.chat_messages(), request.think)
    ids = inputs["input_ids"][0]
    check_context(int(ids.shape[-1]), loaded.context, request.model)
    return Row(index, request, ids, Answer(opened, request.stop))


def _alone(
    backend: TransformersBackend, row: Row, cancel: threading.Event, options: dict[str, Any]
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
    rows: list[Row],
    cancel: threading.Event,
) -> list[ModelResponse] | None:
    """One padded ``generate`` for ``rows``; None when it failed (not when cancelled)."""
    max_new_tokens = backend._max_new_tokens(rows[0].request)
    stop = threading.Event()  # set on an interrupt, or relayed from ``cancel``
    pad = _pad_id(loaded)
    width = max(int(row.ids.shape[-1]) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long, device=loaded.device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=loaded.device)
    for i, row in enumerate(rows):
        length = int(row.ids.shape[-1])
        ids[i, width - length :] = row.ids
        mask[i, width - length :] = 1
        row.decoder = decoder(loaded.tokenizer, row.answer)
    gen_kwargs: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": mask,
        "max_new_tokens": max_new_tokens,
        "pad_token_id": pad,
        "stopping_criteria": watch(torch, rows, (cancel, stop), loaded.eos_ids),
        **sampling_kwargs(torch, rows, loaded.device),
    }
    start = time.perf_counter()
    try:
        failure = _generate(loaded, gen_kwargs, cancel, stop)
    except KeyboardInterrupt:  # told as cancelled, as an interrupted stream is
        for row in rows:
            _tell(backend, row.request, _response(backend, row, start, max_new_tokens), None)
        raise
    if failure is not None:
        log.info("batched generation failed, answering one at a time: %s", failure)
        return None
    responses = [_response(backend, row, start, max_new_tokens) for row in rows]
    for row, response in zip(rows, responses, strict=True):
        _tell(backend, row.request, response, None)
    return responses


def _generate(
    loaded: Loaded, gen_kwargs: dict[str, Any], cancel: threading.Event, stop: threading.Event
) -> str | None:
    """Run ``generate`` on a worker thread, as a single generation does; why it failed.

    On the calling thread, torch's thread pool fights the pools of the generation threads
    (on 2 busy cores a padded batch then ran several times slower). The caller waits,
    relays ``cancel`` to ``stop`` (which the model's hooks check inside a forward pass),
    and on an interrupt stops the worker before raising, the finished steps kept.
    """
    from . import _prefill

    failed: list[BaseException] = []

    def work() -> None:
        try:
            with _prefill.cancel_scope(stop):
                _prefill.prefill(loaded.model, gen_kwargs, stop)  # a lone long prompt, chunked
                loaded.model.generate(**gen_kwargs)
        except _prefill.GenerationCancelled:
            pass  # within one module of the forward pass; the finished steps are kept
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting caller
            failed.append(exc)

    worker = threading.Thread(target=work, name=WORKER, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(_RELAY_S)
            if cancel.is_set():
                stop.set()
    except KeyboardInterrupt:
        stop.set()
        worker.join(_JOIN_TIMEOUT_S)
        raise
    return _describe_failure(failed[0]) if failed else None


def _response(
    backend: TransformersBackend, row: Row, start: float, max_new_tokens: int
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
