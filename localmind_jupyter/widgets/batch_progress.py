"""A batch's progress in a notebook: bar, rows done of total, rows/s, ETA, errors, Cancel.

Fed with ``BatchProgress`` counts by the batch runner (the core); it holds no batch logic.
Cancel sets the runner's cancel event: the rows in flight stop at the source and the
finished ones are kept. Model output never reaches this widget.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

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
        self.progress = progress
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
