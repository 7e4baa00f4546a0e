"""One row of a Transformers batch: its text, its sampler, and what watches every step.

Split from ``_transformers_batch`` (which runs the chunks): how a row's tokens become the
text one stream would give, and the transformers objects (``TextStreamer``,
``StoppingCriteria``) built on first use, so importing this costs no transformers import.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._local_engine import sampling
from ._response import Thinking
from ._stops import StopMatcher
from ._think_tags import ThinkSplitter
from ._transformers_generate import _Sampler, engine_options

if TYPE_CHECKING:
    from ._request import GenerationRequest

__all__ = ["Answer", "Row", "decoder", "sampling_kwargs", "watch"]


class Answer:
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
class Row:
    """One prompt of the batch, from its encoding to its answer."""

    index: int
    request: GenerationRequest
    ids: Any  # the prompt's token ids, a 1-D tensor on the model's device
    answer: Answer
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


def sampling_kwargs(torch: Any, rows: list[Row], device: Any) -> dict[str, Any]:
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


def decoder(tokenizer: Any, answer: Answer) -> Any:
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


def watch(
    torch: Any, rows: list[Row], events: tuple[threading.Event, ...], eos_ids: frozenset[int]
) -> Any:
    """A criterion run after every step: takes each row's token, ends rows at eos or a stop
    string, and ends all of them once one of ``events`` is set."""
    cls = _classes.get("watch")
    if cls is None:
        from transformers import StoppingCriteria

        class _Watch(StoppingCriteria):
            def __init__(
                self, rows: list[Row], events: tuple[threading.Event, ...], eos: frozenset[int]
            ) -> None:
                self.rows, self.events, self.eos = rows, events, eos

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                now = time.perf_counter()
                for row, token in zip(self.rows, input_ids[:, -1].tolist(), strict=True):
                    if not row.done:
                        row.take(torch, token, now, self.eos)
                stop = any(event.is_set() for event in self.events)
                ended = [stop or row.done for row in self.rows]
                return torch.tensor(ended, dtype=torch.bool, device=input_ids.device)

        cls = _classes["watch"] = _Watch
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList([cls(rows, events, eos_ids)])
