"""Showing an answer while it streams: one display handle in a notebook, plain text in a terminal.

Markdown must be re-rendered as a whole on every update, so updates are throttled
(at most ``max_rate`` a second, however fast tokens come, and rarer when one render
takes long) and the final render is always complete.

The answer is untrusted: every bundle carries ``text/plain`` and, for the rich
formats, HTML made by ``safe_display`` (never raw ``text/markdown`` or model HTML,
which JupyterLab would run as trusted markup).
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from .. import safe_display
from .thinking import thinking_bundle

if TYPE_CHECKING:
    from ..backends.base import ResponseStream

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


_TOO_DEEP = "the answer is not valid JSON for display (nested too deep); raw text kept"


def _json_payload(text: str) -> str:
    lang, code = extract_code(text)
    return code if (lang in {"", "json"} and "```" in text) else text.strip()


def finalize(text: str, fmt: str, *, remote_images: bool = False) -> Final:
    """The display bundle and stored value of a finished answer in format ``fmt``."""
    plain = {"text/plain": text}
    if fmt == "markdown":
        return Final(text, {**plain, "text/html": _markdown(text, remote_images)})
    if fmt == "code":
        lang, code = extract_code(text)
        bundle = {"text/plain": code, "text/html": safe_display.code_html(code, lang)}
        return Final(code, bundle, next_input=code)
    if fmt == "json":
        payload = _json_payload(text)
        try:
            value = json.loads(payload)
        except json.JSONDecodeError as exc:
            note = f"the answer is not valid JSON ({exc.msg} at line {exc.lineno}); raw text kept"
            return Final(text, plain, note=note)
        except ValueError as exc:  # a plain ValueError: a number past Python's int limit
            return Final(text, plain, note=f"the answer is not valid JSON ({exc}); raw text kept")
        except RecursionError:
            return Final(text, plain, note=_TOO_DEEP)
        try:
            pretty = json.dumps(value, indent=2, ensure_ascii=False)
        except RecursionError:  # parsed, but too deep to print back
            return Final(text, plain, note=_TOO_DEEP)
        bundle = {
            "text/plain": pretty,
            "application/json": value,
            "text/html": safe_display.code_html(pretty, "json"),
        }
        return Final(value, bundle)
    if fmt == "html":
        cleaned = safe_display.clean_html(text, remote_images=remote_images)
        return Final(text, {**plain, "text/html": cleaned})
    if fmt == "math":
        # MathJax typesets text/latex as text, with its safe-URL filter on in JupyterLab.
        body = text.strip()
        latex = body if body.startswith("$") else f"$${body}$$"
        return Final(text, {**plain, "text/latex": latex})
    return Final(text, plain)


def streaming_bundle(text: str, fmt: str, *, remote_images: bool = False) -> dict[str, str]:
    """What to show while the answer is still arriving (code answers are Markdown too)."""
    if fmt in {"markdown", "code"}:
        return {"text/plain": text, "text/html": _markdown(text, remote_images)}
    return {"text/plain": text}


def _markdown(text: str, remote_images: bool) -> str:
    # An empty answer still gets an HTML part, so the bundle's shape never changes.
    return safe_display.markdown_html(text, remote_images=remote_images) or "<p></p>"


class NotebookView:
    """Re-renders the whole answer through one display handle, throttled."""

    def __init__(
        self, fmt: str, max_rate: float = 20.0, waiting: str = "…", *, remote_images: bool = False
    ) -> None:
        from IPython.display import display

        self.fmt = fmt
        self.remote_images = remote_images
        self.min_interval = 1.0 / max_rate
        self.updates = 0
        self._next = 0.0
        self._waiting = waiting
        self._text = ""
        self._trace: list[str] = []
        self._trace_handle: Any = None
        # Shown until the first piece: loading a model can take a while.
        self._handle = display({"text/plain": f"⏳ {waiting}"}, raw=True, display_id=True)

    def fail(self, text: str) -> None:
        """The request failed before any answer: the waiting line becomes the message."""
        self.close_trace("error")
        self._handle.update(_note_bundle(text, error=True), raw=True)

    def on_thinking(self, piece: str) -> None:
        """A piece of the trace: shown, throttled like the answer, in a block above it.

        The first output (still the waiting line) becomes the block and the answer moves
        to a new one below, so the trace stays above the answer whatever arrives first.
        """
        from IPython.display import display

        self._trace.append(piece)
        if self._trace_handle is None:
            self._trace_handle = self._handle
            bundle = (
                streaming_bundle(self._text, self.fmt, remote_images=self.remote_images)
                if self._text
                else {"text/plain": f"⏳ {self._waiting}"}
            )
            self._handle = display(bundle, raw=True, display_id=True)
            self._next = 0.0
        now = time.monotonic()
        if now < self._next:
            return
        self.updates += 1
        self._trace_handle.update(thinking_bundle("".join(self._trace), "streaming"), raw=True)
        self._next = now + self.min_interval

    def close_trace(self, state: str) -> None:
        """The block's final render: whole, titled by how the answer ended."""
        if self._trace_handle is not None:
            self._trace_handle.update(thinking_bundle("".join(self._trace), state), raw=True)

    def on_piece(self, piece: str, stream: ResponseStream) -> None:
        """Called for every piece; renders at most ``max_rate`` times a second.

        The whole text is joined only when a render is due: joining on every piece
        would cost quadratic time on long answers.
        """
        now = time.monotonic()
        if now < self._next:
            return
        self.updates += 1
        self._text = stream.text
        bundle = streaming_bundle(self._text, self.fmt, remote_images=self.remote_images)
        self._handle.update(bundle, raw=True)
        # A long Markdown answer takes a while to render: then render less often, so
        # rendering never takes more than about a quarter of the stream's time.
        took = time.monotonic() - now
        self._next = now + max(self.min_interval, 4 * took)

    def finish(self, text: str, final: Final, metadata: dict[str, Any]) -> None:
        self.updates += 1
        self.close_trace(_trace_state(metadata))
        self._handle.update(final.bundle, raw=True, metadata={"localmind": metadata})

    def note(self, text: str, *, error: bool = False) -> None:
        self.note_only(text, error=error)

    @staticmethod
    def note_only(text: str, *, error: bool = False) -> None:
        from IPython.display import display

        display(_note_bundle(text, error=error), raw=True)

    def footer(self, text: str) -> None:
        from IPython.display import display

        html = f"<p><sub>{safe_display.escape(text)}</sub></p>"
        display({"text/plain": text, "text/html": html}, raw=True)


class TerminalView:
    """Prints pieces as they come: a terminal IPython has no display updates.

    Model text can carry escape sequences, so only its printable part reaches the terminal.
    """

    def __init__(self, fmt: str, stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.out = stream or sys.stdout
        self.updates = 0
        self._shown = 0
        self._thinking = False

    def fail(self, text: str) -> None:
        self.close_trace("error")
        sys.stderr.write(f"⚠ {safe_display.terminal_text(text)}\n")
        sys.stderr.flush()

    def on_thinking(self, piece: str) -> None:
        """The trace, apart: after a ``[thinking]`` line, dimmed where the output is a tty."""
        if not self._thinking:
            self._thinking = True
            self.out.write("[thinking]\n" + (_DIM if self._tty() else ""))
        self.out.write(safe_display.terminal_text(piece))
        self.out.flush()

    def close_trace(self, state: str = "done") -> None:
        if self._thinking:
            self._thinking = False
            ended = {"stopped": " (stopped)", "error": " (failed)"}.get(state, "")
            self.out.write((_UNDIM if self._tty() else "") + f"\n[/thinking{ended}]\n")
            self.out.flush()

    def _tty(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    def on_piece(self, piece: str, stream: ResponseStream) -> None:
        self.close_trace()
        self.out.write(safe_display.terminal_text(piece))
        self.out.flush()
        self._shown += len(piece)
        self.updates += 1

    def finish(self, text: str, final: Final, metadata: dict[str, Any]) -> None:
        self.close_trace(_trace_state(metadata))
        self.out.write(safe_display.terminal_text(text[self._shown :]) + "\n")
        self.out.flush()

    def note(self, text: str, *, error: bool = False) -> None:
        self.out.write(("⚠ " if error else "") + safe_display.terminal_text(text) + "\n")
        self.out.flush()

    def footer(self, text: str) -> None:
        self.out.write(f"[{safe_display.terminal_text(text)}]\n")
        self.out.flush()


_DIM, _UNDIM = "\x1b[2m", "\x1b[22m"


def _trace_state(metadata: dict[str, Any]) -> str:
    """How the answer ended, for the thinking block's title."""
    if metadata.get("stopped"):
        return "stopped"
    return "error" if metadata.get("error") else "done"


def _note_bundle(text: str, *, error: bool) -> dict[str, str]:
    """A message under the answer; it may quote the server or the model, so it is escaped."""
    icon = "⚠️ " if error else ""
    html = f"<p>{icon}<em>{safe_display.escape(text)}</em></p>"
    return {"text/plain": f"{icon}{text}", "text/html": html}
