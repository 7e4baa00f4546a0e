"""LocalMind's nbval support: plain ``pytest --nbval`` passes on notebooks that use it.

The package registers this module as the pytest plugin ``localmind`` (a ``pytest11``
entry point), so it loads wherever LocalMind is installed. It does nothing unless nbval
runs (``--nbval`` or ``--nbval-lax``): no import, no patch, no cost for other test runs.
``-p no:localmind`` turns it off.

With nbval on, it makes nbval 0.11 compare a cell as a reader sees it in Jupyter:

- Display updates are applied. ``%%localmind`` streams its answer into one display that
  it updates (``update_display_data``); nbval alone ignores updates, so it would compare
  the first "⏳ waiting" placeholder, not the answer.
- Cells run with ``store_history=True``, as in Jupyter: ``In``, ``Out`` and the execution
  counts exist (a prompt can be filled from ``{Out[6]}``).
- What varies from run to run in LocalMind's own output is replaced on both sides of the
  comparison, the stored output and the fresh one: the timings of the statistics footer
  and of the comparison table, download and batch speeds, ETAs, the port of a local server
  and the OS's errno. Answers and token counts are still compared as they are. A stored
  notebook keeps its real timings for its readers; patterns given with
  ``--nbval-sanitize-with`` still apply, before these.
"""

from __future__ import annotations

from collections import deque
from queue import Empty
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, MutableMapping

Message = dict[str, Any]

#: (what it is, regex, replacement): nbval applies them with ``re.sub`` to every text output.
SANITIZE_PATTERNS: tuple[tuple[str, str, str], ...] = (
    # The footer: "transformers:smollm2-135m-instruct · 13 tokens · first token T s ·
    # R tokens/s · D s" with numbers for T, R and D (also a compare column's footer, "~"
    # before estimated counts).
    ("first token", r"first token \d+\.\d+ s", "first token T s"),
    ("tokens per second", r"\d+\.\d+ tokens/s", "R tokens/s"),
    ("duration", r"· \d+\.\d+ s\b", "· D s"),
    # The table of `%%localmind A B`: first token, tokens/s and duration, as HTML cells and
    # as the text form's columns (padded to the width of their headers).
    (
        "compare table cell",
        r"<td style='text-align:left'>\d+\.\d+( s)?</td>",
        "<td style='text-align:left'>N</td>",
    ),
    (
        "compare table text",
        r"\d+\.\d+ s +\d+\.\d+ +\d+\.\d+ s +(?=stop|length|error|cancelled)",
        "T s  R  D s  ",
    ),
    # Downloads ("1.3 MB / 1.3 MB · 100 % · 12.5 MB/s · ETA 0 s") and batches
    # ("12/64 rows · 3.1 rows/s · ETA 17 s", "4 s/row", "done in 20.3 s").
    ("download speed", r"\d+(\.\d+)? [KMGT]?B/s", "SPEED/s"),
    ("eta", r"ETA \d+ s", "ETA N s"),
    ("batch speed", r"\d+\.\d+ rows/s|\d+ s/row", "RATE"),
    ("batch time", r"done in \d+\.\d+ s", "done in D s"),
    # A local server on a free port, as LocalMind names it in tables and errors.
    ("loopback port", r"(127\.0\.0\.1|localhost):\d+", r"\1:PORT"),
    # "[Errno 111] Connection refused" on Linux is errno 61 on macOS.
    ("errno", r"Errno \d+", "Errno N"),
    # The thumbnail of an image sent to a vision model, and its hash: the PNG bytes vary
    # with the matplotlib and pillow that drew and encoded it (the answer is compared).
    (
        "thumbnail",
        r"data:image/png;base64,[A-Za-z0-9+/=]+",
        "data:image/png;base64,THUMBNAIL",
    ),
    ("image hash", r"sha256 [0-9a-f]{8}\b", "sha256 HASH"),
    # What plt.plot() returns, shown with its address: [<matplotlib.lines.Line2D at 0x…>].
    ("object address", r"at 0x[0-9a-f]+>", "at 0xADDRESS>"),
)


def apply_display_updates(messages: Iterable[Message]) -> list[Message]:
    """Fold each ``update_display_data`` into the ``display_data`` with the same display id.

    What Jupyter shows: an updated display keeps its place with the latest content, the
    updates themselves are no outputs. An update for a display this batch did not show (an
    earlier cell's, or an unknown id, or none) is dropped: nbval compares one cell at a time,
    and that cell shows nothing for it. Every display with the id is updated, as in Jupyter.
    """
    shown: dict[str, list[dict[str, Any]]] = {}
    kept = []
    for message in messages:
        kind = message.get("msg_type")
        content = message.get("content")
        content = content if isinstance(content, dict) else {}
        transient = content.get("transient")
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        if kind == "update_display_data":
            for target in shown.get(display_id, []) if isinstance(display_id, str) else []:
                target["data"] = content.get("data", {})
                target["metadata"] = content.get("metadata", {})
            continue
        if kind == "display_data" and isinstance(display_id, str):
            shown.setdefault(display_id, []).append(content)
        kept.append(message)
    return kept


def add_sanitize_patterns(patterns: MutableMapping[str, str]) -> None:
    """Add LocalMind's patterns after the user's own (theirs win for the same regex)."""
    for _, regex, replacement in SANITIZE_PATTERNS:
        patterns.setdefault(regex, replacement)


def _until_idle(
    get_message: Callable[..., Message], timeout: float | None, running: str | None
) -> list[Message]:
    """One cell's iopub messages, up to the kernel's idle status for that cell."""
    batch: list[Message] = []
    try:
        while True:
            message = get_message("iopub", timeout=timeout)
            batch.append(message)
            content = message.get("content") or {}
            parent = (message.get("parent_header") or {}).get("msg_id")
            idle = message.get("msg_type") == "status" and content.get("execution_state") == "idle"
            if idle and (running is None or parent == running):
                return batch
    except Empty:
        if not batch:
            raise
        return batch


def patch_kernel(kernel: Any) -> None:
    """Make one nbval kernel run cells with history and apply its display updates.

    Only this kernel object changes (nbval 0.11 offers no hook for its messages); calling
    this twice is harmless.
    """
    if kernel.__dict__.get("_localmind_patched"):
        return
    get_message = kernel.get_message
    pending: deque[Message] = deque()
    running: list[str] = []

    def execute_cell_input(cell_input: str, allow_stdin: bool | None = None) -> str:
        msg_id: str = kernel.kc.execute(
            cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False
        )
        running[:] = [msg_id]
        return msg_id

    def folded_get_message(stream: str, timeout: float | None = None) -> Message:
        if stream != "iopub":
            message: Message = get_message(stream, timeout=timeout)
            return message
        if not pending:
            batch = _until_idle(get_message, timeout, running[0] if running else None)
            pending.extend(apply_display_updates(batch))
        return pending.popleft()

    kernel.execute_cell_input = execute_cell_input
    kernel.get_message = folded_get_message
    kernel._localmind_patched = True


def _nbval_on(config: pytest.Config) -> bool:
    option = config.option
    return bool(getattr(option, "nbval", False) or getattr(option, "nbval_lax", False))


@pytest.hookimpl(trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """After nbval started a notebook's kernel (its setup), before the cell runs."""
    if not _nbval_on(item.config):
        return
    notebook = item.parent
    kernel = getattr(notebook, "kernel", None)
    patterns = getattr(notebook, "sanitize_patterns", None)
    if kernel is None or not hasattr(kernel, "kc") or not isinstance(patterns, dict):
        return  # not a notebook cell of nbval's
    add_sanitize_patterns(patterns)
    patch_kernel(kernel)
