"""``DownloadProgress``: one row per download, with overall progress and a Cancel button.

The transfers themselves run in the core ``DownloadManager`` on its own threads;
this widget only subscribes to them. Each row redraws at most ``min_interval``
apart (default 0.1 s, so about ten updates a second) plus once at every phase
change and at the end, whatever rate the backend reports at. The bar never moves
backwards: when a backend announces another layer the total grows, and the bar
waits for the bytes to catch up instead of dropping.

A panel shows every download of the kernel, wherever it was started (another panel,
``%localmind pull``): it listens to the manager's "download started" event until it
is closed. It keeps at most ``max_finished_rows`` finished rows (the oldest go).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..core.downloads import (
    CANCELLED,
    DONE,
    FAILED,
    MAX_LISTENERS,
    QUEUED,
    Download,
    DownloadManager,
    DownloadStatus,
)
from ..core.listeners import Listeners
from ..session import KernelSession, get_session
from . import _style as s
from ._download_html import details_html
from ._tree import close_tree

FinishedListener = Callable[[DownloadStatus], None]

_BAR_STYLE = {DONE: "success", FAILED: "danger", CANCELLED: "warning"}


class DownloadRow:
    """The row of one download; fed from the download's thread, throttled here."""

    def __init__(
        self,
        download: Download,
        *,
        min_interval: float,
        redact: s.Redactor,
        on_final: Callable[[DownloadRow, DownloadStatus], None],
        on_dismiss: Callable[[DownloadRow], None],
        on_cancel: Callable[[DownloadRow], None] | None = None,
    ) -> None:
        self.download = download
        self.backend = download.backend.name
        self.model = download.model
        self.min_interval = min_interval
        self.status: DownloadStatus | None = None
        #: How many times the row was redrawn (each redraw is one message to the browser).
        self.redraws = 0
        self._redact = redact
        self._on_final = on_final
        self._on_dismiss = on_dismiss
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._last_phase: str | None = None
        self._last_state: str | None = None
        self._pending: DownloadStatus | None = None
        self._timer: threading.Timer | None = None
        self._percent = 0.0
        self._final_sent = False

        spec = f"{self.backend}:{self.model}"
        self.label = widgets.HTML(
            s.block(
                f'<span title="{s.esc(spec)}" style="font-weight:600">{s.esc(spec)}</span>',
                "white-space:nowrap;overflow:hidden;text-overflow:ellipsis",
            ),
            layout=widgets.Layout(width="16em", max_width="100%", margin="0 8px 0 0"),
        )
        self.bar = widgets.FloatProgress(
            value=0.0,
            min=0.0,
            max=100.0,
            layout=widgets.Layout(flex="1 1 10em", min_width="8em", width="auto"),
        )
        self.percent = widgets.HTML(
            s.block(s.fixed("0 %", 3.5)), layout=widgets.Layout(width="4em", margin="0 8px")
        )
        self.button = widgets.Button(
            description="Cancel",
            icon="stop",
            tooltip="Stop this download; nothing is installed",
            layout=widgets.Layout(width="8em"),
        )
        self.button.on_click(self._clicked)
        self.details = widgets.HTML(layout=widgets.Layout(width="100%"))
        line = widgets.HBox(
            [self.label, self.bar, self.percent, self.button],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center", width="100%"),
        )
        self.box = widgets.VBox(
            [line, self.details],
            layout=widgets.Layout(
                width="100%",
                padding="4px 0",
                border_bottom="1px solid var(--jp-border-color2, #e0e0e0)",
            ),
        )

    def __repr__(self) -> str:
        state = self.status.state if self.status else QUEUED
        return f"<DownloadRow {self.backend}:{self.model} {state}>"

    @property
    def state(self) -> str:
        return self.status.state if self.status else QUEUED

    @property
    def finished(self) -> bool:
        return self.status is not None and self.status.finished

    # --- fed by the download thread ------------------------------------------------------------
    def update(self, status: DownloadStatus) -> None:
        """Redraw now if due (interval passed, new phase, the end), else by a trailing timer."""
        final = False
        with self._lock:
            if self._final_sent:
                return
            now = time.monotonic()
            due = (
                status.finished
                or status.state != self._last_state
                or status.phase != self._last_phase
                or now - self._last_draw >= self.min_interval
            )
            if not due:
                self._pending = status
                if self._timer is None:
                    delay = self.min_interval - (now - self._last_draw)
                    self._timer = threading.Timer(max(delay, 0.0), self._flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._pending = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._draw(status, now)
            if status.finished:
                self._final_sent = final = True
        if final:
            self._on_final(self, status)

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            status, self._pending = self._pending, None
            if status is None or self._final_sent:
                return
            self._draw(status, time.monotonic())

    def _draw(self, status: DownloadStatus, now: float) -> None:
        """Set the widgets from one snapshot (called with the row's lock held)."""
        self.status = status
        self._last_draw = now
        self._last_phase = status.phase
        self._last_state = status.state
        self.redraws += 1

        if status.state == DONE:
            percent = 100.0
        else:
            fraction = status.fraction or 0.0
            # Below 100 until the backend says done; never backwards when the total grows.
            percent = max(self._percent, min(99.9, 100.0 * fraction))
        self._percent = percent
        if self.bar.value != percent:
            self.bar.value = percent
        self.bar.bar_style = _BAR_STYLE.get(status.state, "")
        self.percent.value = s.block(s.fixed(f"{int(percent)} %", 3.5))
        self.details.value = details_html(status, self._redact)
        if status.finished:
            self.button.description = "Dismiss"
            self.button.icon = "times"
            self.button.tooltip = "Remove this row"
            self.button.disabled = False

    # --- the button ----------------------------------------------------------------------------
    def _clicked(self, _button: widgets.Button) -> None:
        if self.finished:
            self._on_dismiss(self)
            return
        self.cancel()

    def cancel(self) -> None:
        """Ask the transfer to stop; the row shows 'cancelled' once the thread has stopped."""
        self.download.cancel()
        self.button.disabled = True
        self.button.description = "Cancelling…"
        if self._on_cancel is not None:
            self._on_cancel(self)


class DownloadProgress(widgets.VBox):
    """Every download of the kernel (running when this was built or started later), several
    at once; with ``attach_running=False`` only the ones started or tracked through it.

    Finished and failed rows stay, with their outcome, until dismissed or cleared; past
    ``max_finished_rows`` the oldest finished row goes.
    """

    def __init__(
        self,
        *,
        session: KernelSession | None = None,
        min_interval: float = 0.1,
        attach_running: bool = True,
        max_finished_rows: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # ipywidgets is untyped
        self.session = session if session is not None else get_session()
        self.min_interval = min_interval
        self.max_finished_rows = max_finished_rows
        self.rows: dict[str, DownloadRow] = {}
        self._listeners: Listeners[DownloadStatus] = Listeners(
            MAX_LISTENERS, "listeners of a downloads panel"
        )
        self._changed: Listeners[DownloadStatus] = Listeners(
            MAX_LISTENERS, "listeners of a downloads panel"
        )
        self._manager: DownloadManager | None = None
        self._closed = False
        self._lock = threading.RLock()
        self.redact = s.Redactor.from_session(self.session)

        self.title = widgets.HTML(s.heading("Downloads"))
        self.clear_button = widgets.Button(
            description="Clear finished",
            icon="eraser",
            tooltip="Remove the rows of finished, failed and cancelled downloads",
            layout=widgets.Layout(width="auto"),
        )
        self.clear_button.on_click(lambda _b: self.clear_finished())
        self.message = widgets.HTML()
        self.empty = widgets.HTML(
            s.note("No downloads yet: pick a model in the catalog and click Download.")
        )
        self._rows_box = widgets.VBox(layout=widgets.Layout(width="100%"))
        header = widgets.HBox(
            [self.title, self.clear_button],
            layout=widgets.Layout(
                flex_flow="row wrap", justify_content="space-between", align_items="center"
            ),
        )
        self.children = [header, self.empty, self._rows_box, self.message]
        self.layout.width = "100%"
        if attach_running:
            self._follow_kernel()

    # --- public -------------------------------------------------------------------------------
    def start(self, backend: str, model: str) -> Download:
        """Start (or join) a download through the session's DownloadManager; returns at once.

        Raises ``LocalMindError`` for a backend that cannot be used.
        """
        download = self.session.downloads.start(backend, model)
        self.track(download)
        return download

    def track(self, download: Download) -> DownloadRow:
        """Show a download; one that is already shown keeps its single row."""
        with self._lock:
            row = self.rows.get(download.id)
            if row is not None:
                return row
            row = DownloadRow(
                download,
                min_interval=self.min_interval,
                redact=self.redact,
                on_final=self._row_finished,
                on_dismiss=self.dismiss,
                on_cancel=self._row_cancelled,
            )
            self.rows[download.id] = row
            self._show_rows()
        download.subscribe(row.update)  # outside our lock: it calls back at once
        self._changed.emit(download.snapshot())
        return row

    def row_for(self, backend: str, model: str) -> DownloadRow | None:
        """The newest row of ``backend:model``, if any."""
        with self._lock:
            found = [r for r in self.rows.values() if (r.backend, r.model) == (backend, model)]
        return found[-1] if found else None

    def active(self, backend: str, model: str) -> bool:
        """A download of it runs (one being cancelled does not count: it may start again)."""
        row = self.row_for(backend, model)
        return row is not None and not row.finished and not row.download.cancelling

    def on_finished(self, callback: FinishedListener) -> None:
        """Call ``callback(final_status)`` when a download ends, on the download's thread."""
        self._listeners.add(callback)

    def on_changed(self, callback: FinishedListener) -> None:
        """Call ``callback(status)`` when a row appears or its download is being cancelled."""
        self._changed.add(callback)

    def remove_listener(self, callback: FinishedListener) -> None:
        self._listeners.remove(callback)
        self._changed.remove(callback)

    def dismiss(self, row: DownloadRow) -> None:
        if not row.finished:
            return
        row.download.unsubscribe(row.update)
        with self._lock:
            self.rows.pop(row.download.id, None)
            self._show_rows()
        close_tree(row.box)

    def clear_finished(self) -> None:
        for row in [r for r in self.rows.values() if r.finished]:
            self.dismiss(row)

    def close(self) -> None:
        """Stop watching the downloads (they keep running) and close every row."""
        self._closed = True
        if self._manager is not None:
            self._manager.unsubscribe(self._download_started)
        self._listeners.clear()
        self._changed.clear()
        for row in list(self.rows.values()):
            row.download.unsubscribe(row.update)
        close_tree(self)

    # --- internals ----------------------------------------------------------------------------
    def _follow_kernel(self) -> None:
        """Show the downloads running in this kernel and every one started from now on."""
        try:
            manager = self.session.downloads
            manager.subscribe(self._download_started)  # first, so none is missed
            running = [st.id for st in manager.downloads() if not st.finished]
        except Exception:  # noqa: BLE001 - a broken config is reported by the other widgets
            return
        self._manager = manager
        for download_id in running:
            download = manager.get(download_id)
            if download is not None:
                self.track(download)

    def _download_started(self, download: Download) -> None:
        if not self._closed:
            self.track(download)

    def _row_cancelled(self, row: DownloadRow) -> None:
        self._changed.emit(row.download.snapshot())

    def _show_rows(self) -> None:
        self._rows_box.children = [row.box for row in self.rows.values()]
        self.empty.layout.display = "none" if self.rows else None

    def _row_finished(self, row: DownloadRow, status: DownloadStatus) -> None:
        with self._lock:
            finished = [r for r in self.rows.values() if r.finished]
        for old in finished[: max(0, len(finished) - self.max_finished_rows)]:
            self.dismiss(old)
        for callback in self._listeners.snapshot():
            try:
                callback(status)
            except Exception as exc:  # noqa: BLE001 - shown, never lost in a thread
                self.message.value = s.note(self.redact(f"after {row.model}: {exc}"), "error")
