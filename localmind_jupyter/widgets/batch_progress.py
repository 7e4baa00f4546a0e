"""A batch's progress in a notebook: bar, rows done of total, rows/s, ETA, errors, Cancel.

Fed with ``BatchProgress`` counts by the batch runner (the core); it holds no batch logic.
Cancel sets the runner's cancel event: the rows in flight stop at the source and the
finished ones are kept. Model output never reaches this widget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from . import _style as s

if TYPE_CHECKING:
    from ..core._batch_result import BatchProgress, BatchResult


class BatchProgressBar:
    """Shown when built (``display``); ``update`` from any thread, ``close`` at the end."""

    def __init__(
        self,
        total: int,
        label: str,
        *,
        cancel: threading.Event | None = None,
        show: bool = True,
    ) -> None:
        self.total = total
        self.label = label
        self.cancel_event = cancel
        #: The last counts shown (tests and front ends read them).
        self.progress: BatchProgress | None = None
        self.bar = widgets.IntProgress(value=0, min=0, max=total, bar_style="info")
        self.bar.layout.width = "320px"
        self.text = widgets.HTML(self._html(f"0/{total} rows · starting"))
        self.cancel_button = widgets.Button(
            description="Cancel", icon="stop", tooltip="stop the batch and keep finished rows"
        )
        self.cancel_button.layout.width = "90px"
        self.cancel_button.on_click(lambda _button: self.cancel())
        if cancel is not None:
            _hear_clicks_while_busy(self.cancel_button, cancel.set)
        self.box = widgets.VBox([widgets.HBox([self.bar, self.cancel_button]), self.text])
        if show:
            from IPython.display import display

            display(self.box)

    def _html(self, line: str, kind: str = "") -> str:
        head = f"<b>{s.esc(self.label)}</b> · "
        body = s.esc(line)
        if kind:
            body = f'<span style="color:{s.COLOURS[kind]}">{body}</span>'
        return s.block(head + body)

    @property
    def done(self) -> int:
        return self.bar.value

    @property
    def errors(self) -> int:
        return self.progress.errors if self.progress is not None else 0

    def cancel(self) -> None:
        """The Cancel button: the batch stops its rows in flight and returns what finished."""
        if self.cancel_event is not None:
            self.cancel_event.set()
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling"

    def update(self, progress: BatchProgress) -> None:
        """New counts (from the thread that waits for the batch)."""
        self.progress = progress
        if self.cancel_event is not None and self.cancel_event.is_set():
            self.cancel_button.disabled = True  # clicked while busy: shown from here
            self.cancel_button.description = "Cancelling"
        self.bar.value = progress.done
        if progress.errors:
            self.bar.bar_style = "warning"
        self.text.value = self._html(progress.line(), "error" if progress.errors else "")

    def close(self, result: BatchResult) -> None:
        """The final state: green when every row was answered, the note when interrupted."""
        from .._batch_text import interrupted_note

        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancel"
        counts = result.counts
        if result.cancelled:
            self.bar.bar_style = "warning"
            self.text.value = self._html(interrupted_note(result), "warn")
        elif counts["error"]:
            self.bar.bar_style = "danger"
        else:
            self.bar.bar_style = "success"


def _hear_clicks_while_busy(button: widgets.Button, on_click: Callable[[], None]) -> None:
    """Let a click reach ``on_click`` while the cell that runs the batch still blocks.

    A widget's messages wait on the kernel's main thread, which the batch holds until it
    returns, so a plain ``on_click`` would only run after the batch ended. ipykernel 7
    routes each comm message on its shell channel thread and asks the comm's
    ``_reply_subshell_for(data, default)`` where to send it: answering that, we notice the
    click there (and still send the message on, unchanged). Only an event is set on that
    thread; the widget shows it at the next progress update. Elsewhere the kernel's
    interrupt (the stop button) does the same; the button then works only once idle.
    """
    comm = getattr(button, "comm", None)
    route = getattr(comm, "_reply_subshell_for", None)
    if comm is None or not callable(route):
        return

    def reply_subshell_for(data: Any, default: Any) -> Any:
        content = data.get("content") if isinstance(data, dict) else None
        if isinstance(content, dict) and content.get("event") == "click":
            on_click()
        return route(data, default)

    comm._reply_subshell_for = reply_subshell_for
