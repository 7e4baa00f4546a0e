"""``%localmind log``: the answer log's recent exchanges as a table.

Prompts and answers are untrusted text: each cell is cut to one short line with control
characters dropped, and ``Table`` redacts it and escapes it for HTML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..safe_display import terminal_text
from .tables import Table

HEADERS = ("time", "source", "model", "prompt", "answer", "tokens", "finish")
#: Characters of a prompt or an answer shown in the table.
SHORT = 60
_SPACES = re.compile(r"\s+")


def short(text: str | None, width: int = SHORT) -> str:
    """One line of at most ``width`` characters: whitespace runs as one space."""
    flat = _SPACES.sub(" ", terminal_text(text or "")).strip()
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def _tokens(entry: dict[str, Any]) -> str:
    prompt, completion = entry.get("prompt_tokens"), entry.get("completion_tokens")
    if prompt is None and completion is None:
        return ""
    about = "~" if entry.get("tokens_approximate") else ""
    return (
        f"{'?' if prompt is None else prompt} → {about}{'?' if completion is None else completion}"
    )


def _finish(entry: dict[str, Any]) -> str:
    if entry.get("error"):
        return f"error: {short(entry['error'], 50)}"
    return str(entry.get("finish_reason") or "")


def log_table(entries: Sequence[dict[str, Any]], title: str = "") -> Table:
    """The rows of ``AnswerLog.entries()`` (newest first), times in local time."""
    rows = [
        [
            e["time"].astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            str(e["source"]),
            f"{e['backend']}:{e['model']}",
            short(e["prompt"]),
            short(e["answer"]),
            _tokens(e),
            _finish(e),
        ]
        for e in entries
    ]
    return Table(HEADERS, rows, title)
