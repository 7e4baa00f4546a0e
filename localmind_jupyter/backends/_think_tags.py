"""``<think>…</think>`` in the text of models whose server does not split the trace out.

Reasoning models (qwen3, deepseek-r1, SmolLM3…) write their trace between these tags
when the engine does not separate it (llama.cpp, Transformers, a plain server). The
splitter turns a text stream into answer text and ``Thinking`` pieces, tags cut across
pieces included, holding back only what may be the start of a tag.
"""

from __future__ import annotations

from collections.abc import Generator

from ._response import Delta, Thinking

__all__ = ["ThinkSplitter", "split_think_tags"]

OPEN, CLOSE = "<think>", "</think>"


def _held_back(text: str, tag: str) -> int:
    """How many trailing characters of ``text`` could begin ``tag`` (kept for the next piece)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class ThinkSplitter:
    """Feed text pieces; get back answer ``str`` and ``Thinking`` pieces, in order.

    ``opened``: the prompt already opened the trace (a chat template that ends with
    ``<think>``), so the text starts inside it.
    """

    def __init__(self, opened: bool = False) -> None:
        self.inside = opened
        self._pending = ""
        #: Whether any answer text was seen yet: a ``<think>`` opens a trace only before it.
        self._answered = False
        #: A trace just closed: the blank lines after ``</think>`` are not the answer's.
        self._after_trace = opened

    def feed(self, piece: str) -> list[str | Thinking]:
        text = self._pending + piece
        self._pending = ""
        out: list[str | Thinking] = []
        while text:
            if self.inside:
                end = text.find(CLOSE)
                if end < 0:
                    keep = _held_back(text, CLOSE)
                    self._emit(out, text[: len(text) - keep], thinking=True)
                    self._pending = text[len(text) - keep :]
                    return out
                self._emit(out, text[:end], thinking=True)
                text = text[end + len(CLOSE) :]
                self.inside, self._after_trace = False, True
                continue
            if self._answered:
                self._emit(out, text, thinking=False)
                return out
            start = text.find(OPEN)
            if start >= 0 and not text[:start].strip():
                text = text[start + len(OPEN) :]
                self.inside = True
                continue
            stripped = text.lstrip()
            if start < 0 and OPEN.startswith(stripped):
                self._pending = text  # blank so far, or the start of "<think>": wait
                return out
            self._emit(out, text, thinking=False)
            return out
        return out

    def flush(self) -> list[str | Thinking]:
        """The end of the stream: what was held back is what it is."""
        text, self._pending = self._pending, ""
        out: list[str | Thinking] = []
        self._emit(out, text, thinking=self.inside)
        return out

    def _emit(self, out: list[str | Thinking], text: str, *, thinking: bool) -> None:
        if not text:
            return
        if thinking:
            out.append(Thinking(text))
            return
        if not self._answered:
            if self._after_trace:
                text = text.lstrip()
            if not text:
                return
            self._answered = True
        out.append(text)


def split_think_tags(
    source: Generator[Delta, None, None], opened: bool = False
) -> Generator[Delta, None, None]:
    """``source`` with its ``<think>`` trace as ``Thinking``; closing this closes ``source``."""
    splitter = ThinkSplitter(opened)
    try:
        for delta in source:
            if isinstance(delta, str):
                yield from splitter.feed(delta)
            else:
                yield delta
        yield from splitter.flush()
    finally:
        source.close()
