"""The side-by-side view of a comparison: one column per model, as HTML and as plain text.

Pure builders (no IPython), so the magic and the model manager draw the same view. Model
text is untrusted: each column's answer and trace go through ``safe_display`` on their
own (the cleaned fragment is balanced, so it cannot close the column around it), and
every label or error message is escaped. The frame's style is inline (outputs carry no
stylesheet), made only of JupyterLab's CSS variables so it follows the light and dark
themes; the grid puts the columns side by side and stacks them on a narrow screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import safe_display
from ..secrets import redact
from .render import finalize
from .thinking import thinking_bundle

if TYPE_CHECKING:
    from ..backends._response import ModelResponse
    from ..core.compare import CompareEvent

__all__ = [
    "SUMMARY_HEADERS",
    "Column",
    "apply_event",
    "column_text",
    "columns_html",
    "columns_text",
    "stats_line",
    "summary_rows",
]

_GRID = (
    "display:grid;grid-template-columns:repeat(auto-fit,minmax(min(22em,100%),1fr));"
    "gap:10px;align-items:stretch;margin:2px 0"
)
_COLUMN = (
    "display:flex;flex-direction:column;min-width:0;"
    "border:1px solid var(--jp-border-color2);border-radius:4px;"
    "background:var(--jp-layout-color1);color:var(--jp-ui-font-color1)"
)
_HEADER = (
    "padding:4px 8px;border-bottom:1px solid var(--jp-border-color2);"
    "background:var(--jp-layout-color2);font-family:var(--jp-ui-font-family);"
    "font-size:var(--jp-ui-font-size1);overflow-wrap:anywhere"
)
_BODY = (
    "flex:1;padding:0 8px;min-width:0;overflow-x:auto;overflow-wrap:anywhere;"
    "font-family:var(--jp-content-font-family);font-size:var(--jp-content-font-size1)"
)
_FOOTER = (
    "padding:3px 8px;border-top:1px solid var(--jp-border-color2);"
    "font-family:var(--jp-ui-font-family);font-size:var(--jp-ui-font-size0);"
    "color:var(--jp-ui-font-color2)"
)
_MUTED = "color:var(--jp-ui-font-color2)"
_ERROR = "color:var(--jp-error-color1);margin:6px 0;white-space:pre-wrap"

#: How a column's state reads in its header.
_STATES = {
    "waiting": "⏳ waiting",
    "streaming": "streaming…",
    "done": "",
    "stopped": "stopped",
    "error": "failed",
}


@dataclass
class Column:
    """What one column shows: the pieces so far, then how it ended."""

    backend: str
    model: str
    pieces: list[str] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)
    response: ModelResponse | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.model}"

    @property
    def text(self) -> str:
        if self.response is not None and (self.response.text or not self.pieces):
            return self.response.text
        return "".join(self.pieces)

    @property
    def state(self) -> str:
        if self.response is None:
            return "streaming" if self.pieces or self.trace else "waiting"
        if self.response.finish_reason == "error":
            return "error"
        return "stopped" if self.response.finish_reason == "cancelled" else "done"


def apply_event(columns: list[Column], event: CompareEvent) -> None:
    """A core event into the column it is for (a front end then redraws when it likes)."""
    column = columns[event.column]
    if event.kind == "text":
        column.pieces.append(event.text)
    elif event.kind == "thinking":
        column.trace.append(event.text)
    else:
        column.response = event.response
        column.error = redact(event.error) if event.error else None  # never a key or password


def stats_line(response: ModelResponse) -> str:
    """One column's footer: tokens, first token, speed, duration."""
    about = "~" if response.tokens_approximate else ""
    parts = []
    if response.completion_tokens is not None:
        parts.append(f"{about}{response.completion_tokens} tokens")
    if response.time_to_first_token is not None:
        parts.append(f"first token {response.time_to_first_token:.2f} s")
    if response.tokens_per_second:
        parts.append(f"{about}{response.tokens_per_second:.1f} tokens/s")
    if response.duration is not None:
        parts.append(f"{response.duration:.1f} s")
    if response.finish_reason and response.finish_reason != "stop":
        parts.append(response.finish_reason)
    if response.replayed:
        parts.append("replayed")
    return " · ".join(parts)


def _answer_html(column: Column, fmt: str, remote_images: bool) -> str:
    text = column.text
    if not text:
        return ""
    if column.state in ("done", "stopped") and column.response is not None:
        if column.response.parsed is not None:
            from .thinking import parsed_bundle

            return str(parsed_bundle(column.response.parsed)["text/html"])
        final = finalize(text, "markdown" if fmt == "math" else fmt, remote_images=remote_images)
        html = final.bundle.get("text/html")
        if isinstance(html, str):
            return html
        return f"<pre>{safe_display.escape(text)}</pre>"
    if fmt in ("markdown", "code", "math"):
        return safe_display.markdown_html(text, remote_images=remote_images)
    return f"<pre>{safe_display.escape(text)}</pre>"  # json, text, html: as written


def _column_html(column: Column, fmt: str, remote_images: bool) -> str:
    state = _STATES[column.state]
    header = (
        f"<strong>{safe_display.escape(column.model)}</strong> "
        f'<span style="{_MUTED}">{safe_display.escape(column.backend)}</span>'
        + (f' <span style="{_MUTED}">· {safe_display.escape(state)}</span>' if state else "")
    )
    body = ""
    if column.trace:
        trace_state = {"waiting": "streaming"}.get(column.state, column.state)
        body += thinking_bundle("".join(column.trace), trace_state)["text/html"]
    body += _answer_html(column, fmt, remote_images)
    if column.error:
        body += f'<div style="{_ERROR}">⚠️ {safe_display.escape(column.error)}</div>'
    if not body:
        body = f'<p style="{_MUTED}">…</p>'
    footer = stats_line(column.response) if column.response is not None else ""
    return (
        f'<div style="{_COLUMN}"><div style="{_HEADER}">{header}</div>'
        f'<div style="{_BODY}">{body}</div>'
        f'<div style="{_FOOTER}">{safe_display.escape(footer) or "&nbsp;"}</div></div>'
    )


def columns_html(
    columns: list[Column], fmt: str = "markdown", *, remote_images: bool = False
) -> str:
    """The grid of columns in their current state."""
    inner = "".join(_column_html(c, fmt, remote_images) for c in columns)
    return f'<div class="lm-compare" style="{_GRID}">{inner}</div>'


def column_text(column: Column) -> str:
    """One column as plain text: a header line, the trace, the answer, the error."""
    state = _STATES[column.state]
    lines = [f"── {column.label}" + (f" ({state})" if state else "") + " ──"]
    if column.trace:
        lines.append(f"[thinking]\n{''.join(column.trace)}\n[/thinking]")
    lines.append(column.text)
    if column.error:
        lines.append(f"⚠ {column.error}")
    if column.response is not None:
        stats = stats_line(column.response)
        if stats:
            lines.append(f"[{stats}]")
    return "\n".join(lines)


def columns_text(columns: list[Column]) -> str:
    """Every column one after another (``text/plain`` of the view)."""
    return "\n\n".join(column_text(c) for c in columns)


def summary_rows(columns: list[Column]) -> list[list[str]]:
    """The table under the view: one row per model."""
    rows = []
    for column in columns:
        r = column.response
        if r is None:
            rows.append([column.label, "", "", "", "", "running"])
            continue
        about = "~" if r.tokens_approximate else ""
        rows.append(
            [
                column.label,
                "" if r.completion_tokens is None else f"{about}{r.completion_tokens}",
                "" if r.time_to_first_token is None else f"{r.time_to_first_token:.2f} s",
                f"{about}{r.tokens_per_second:.1f}" if r.tokens_per_second else "",
                "" if r.duration is None else f"{r.duration:.2f} s",
                (r.finish_reason or "") + (" · replayed" if r.replayed else ""),
            ]
        )
    return rows


SUMMARY_HEADERS = ["model", "tokens", "first token", "tokens/s", "duration", "finish"]
