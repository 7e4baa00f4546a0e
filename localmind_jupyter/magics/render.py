"""Showing an answer while it streams: one display handle in a notebook, plain text in a terminal.

Markdown must be re-rendered as a whole on every update, so updates are throttled
(at most ``max_rate`` a second, however fast tokens come) and the final render is
always complete.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

FORMATS = ("markdown", "text", "code", "json", "html", "math")

_CODE_BLOCK = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass
class Final:
    """What a format turns the finished answer into."""

    value: Any  # what ``-o VAR`` stores
    bundle: dict[str, Any]  # mimetype -> data for the final display
    note: str | None = None  # a short message shown under it (e.g. invalid JSON)
    next_input: str | None = None  # offered as the next cell (code format)


def extract_code(text: str) -> tuple[str, str]:
    """(language, code) of the first fenced block, or the whole answer when there is none."""
    match = _CODE_BLOCK.search(text)
    if match is None:
        return "", text.strip()
    return match.group(1), match.group(2).rstrip()


def _json_payload(text: str) -> str:
    lang, code = extract_code(text)
    return code if (lang in {"", "json"} and "```" in text) else text.strip()


def finalize(text: str, fmt: str) -> Final:
    """The display bundle and stored value of a finished answer in format ``fmt``."""
    plain = {"text/plain": text}
    if fmt == "markdown":
        return Final(text, {**plain, "text/markdown": text})
    if fmt == "code":
        lang, code = extract_code(text)
        fenced = f"```{lang}\n{code}\n```"
        return Final(code, {"text/plain": code, "text/markdown": fenced}, next_input=code)
    if fmt == "json":
        payload = _json_payload(text)
        try:
            value = json.loads(payload)
        except ValueError as exc:
            note = f"the answer is not valid JSON ({exc.msg} at line {exc.lineno}); raw text kept"
            return Final(text, plain, note=note)
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
        bundle = {
            "text/plain": pretty,
            "application/json": value,
            "text/markdown": f"```json\n{pretty}\n```",
        }
        return Final(value, bundle)
    if fmt == "html":
        return Final(text, {**plain, "text/html": text})
    if fmt == "math":
        body = text.strip()
        latex = body if body.startswith("$") else f"$${body}$$"
        return Final(text, {**plain, "text/latex": latex})
    return Final(text, plain)


def streaming_bundle(text: str, fmt: str) -> dict[str, str]:
    """What to show while the answer is still arriving (code answers are Markdown too)."""
    if fmt in {"markdown", "code"}:
        return {"text/plain": text, "text/markdown": text}
    return {"text/plain": text}


class NotebookView:
    """Re-renders the whole answer through one display handle, throttled."""

    def __init__(self, fmt: str, max_rate: float = 20.0, waiting: str = "…") -> None:
        from IPython.display import display

        self.fmt = fmt
        self.min_interval = 1.0 / max_rate
        self.updates = 0
        self._last = 0.0
        # Shown until the first piece: loading a model can take a while.
        self._handle = display({"text/plain": f"⏳ {waiting}"}, raw=True, display_id=True)

    def fail(self, text: str) -> None:
        """The request failed before any answer: the waiting line becomes the message."""
        self._handle.update(_note_bundle(text, error=True), raw=True)

    def on_piece(self, piece: str, stream: Any) -> None:
        """Called for every piece; renders at most ``max_rate`` times a second.

        The whole text is joined only when a render is due: joining on every piece
        would cost quadratic time on long answers.
        """
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        self.updates += 1
        self._handle.update(streaming_bundle(stream.text, self.fmt), raw=True)

    def finish(self, text: str, final: Final, metadata: dict[str, Any]) -> None:
        self.updates += 1
        self._handle.update(final.bundle, raw=True, metadata={"localmind": metadata})

    def note(self, text: str, *, error: bool = False) -> None:
        self.note_only(text, error=error)

    @staticmethod
    def note_only(text: str, *, error: bool = False) -> None:
        from IPython.display import display

        display(_note_bundle(text, error=error), raw=True)

    def footer(self, text: str) -> None:
        from IPython.display import display

        display({"text/plain": text, "text/markdown": f"<sub>{_md_escape(text)}</sub>"}, raw=True)


class TerminalView:
    """Prints pieces as they come: a terminal IPython has no display updates."""

    def __init__(self, fmt: str, stream: Any = None) -> None:
        self.fmt = fmt
        self.out = stream or sys.stdout
        self.updates = 0
        self._shown = 0

    def fail(self, text: str) -> None:
        sys.stderr.write(f"⚠ {text}\n")
        sys.stderr.flush()

    def on_piece(self, piece: str, stream: Any) -> None:
        self.out.write(piece)
        self.out.flush()
        self._shown += len(piece)
        self.updates += 1

    def finish(self, text: str, final: Final, metadata: dict[str, Any]) -> None:
        self.out.write(text[self._shown :] + "\n")
        self.out.flush()

    def note(self, text: str, *, error: bool = False) -> None:
        self.out.write(("⚠ " if error else "") + text + "\n")
        self.out.flush()

    def footer(self, text: str) -> None:
        self.out.write(f"[{text}]\n")
        self.out.flush()


def _note_bundle(text: str, *, error: bool) -> dict[str, str]:
    icon = "⚠️ " if error else ""
    return {"text/plain": f"{icon}{text}", "text/markdown": f"{icon}*{_md_escape(text)}*"}


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", text)
