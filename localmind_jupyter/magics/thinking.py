"""The reasoning trace shown apart from the answer, and a structured answer as pretty JSON.

The trace is model output like the answer: rendered through ``safe_display`` on its own
(so its markup is closed inside its own fragment and cannot end the block), then wrapped
in a collapsed ``<details>`` and cleaned once more as a whole.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import safe_display

if TYPE_CHECKING:
    from ..backends.base import ModelResponse

#: The block's title in each state of the answer.
SUMMARIES = {
    "streaming": "Thinking…",
    "done": "Thinking",
    "stopped": "Thinking (stopped)",
    "error": "Thinking (the answer failed)",
}

#: Fields of ``ModelResponse.to_dict()`` that are the answer, not its statistics.
_NOT_STATS = frozenset({"text", "parsed", "thinking"})


def thinking_bundle(trace: str, state: str) -> dict[str, str]:
    """The collapsed block for ``trace`` in ``state`` (a key of ``SUMMARIES``)."""
    summary = SUMMARIES[state]
    body = safe_display.markdown_html(trace) or "<p></p>"
    html = safe_display.clean_html(
        f"<details><summary>{safe_display.escape(summary)}</summary><div>{body}</div></details>"
    )
    return {"text/plain": f"[{summary}]\n{trace}", "text/html": html}


def parsed_bundle(parsed: Any) -> dict[str, Any]:
    """A validated answer (an instance, a dict, a list) as indented JSON in a code block."""
    dump = getattr(parsed, "model_dump", None)
    data = dump(mode="json") if callable(dump) else parsed
    pretty = json.dumps(data, indent=2, ensure_ascii=False)
    return {
        "text/plain": pretty,
        "application/json": data,
        "text/html": safe_display.code_html(pretty, "json"),
    }


def stats_of(response: ModelResponse) -> dict[str, Any]:
    """The answer's statistics: no text, parsed object or trace; a warning only if any."""
    stats = {k: v for k, v in response.to_dict().items() if k not in _NOT_STATS}
    for optional in ("thinking_tokens", "warning"):
        if stats.get(optional) is None:
            stats.pop(optional, None)
    return stats
