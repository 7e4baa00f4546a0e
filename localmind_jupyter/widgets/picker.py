"""``BackendPicker``: every configured backend, whether it can be used and why not.

Probing runs on a background thread (a backend that does not answer costs its
timeout), so the refresh button never blocks the kernel. Choosing a backend sets
``value``; the model manager links it to the catalog's ``backend`` filter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from traitlets import Unicode

from ..errors import LocalMindError
from ..session import KernelSession, get_session
from . import _style as s
from ._background import BackgroundJob
from ._tree import close_tree

if TYPE_CHECKING:
    from ..backends.contracts import BackendStatusInfo, RegistryAnswer

Listener = Callable[["RegistryAnswer"], None]

CHECKING, AVAILABLE, UNAVAILABLE, DISABLED = "checking", "available", "unavailable", "disabled"
_BADGE_KIND = {AVAILABLE: "ok", UNAVAILABLE: "error", DISABLED: "muted", CHECKING: "muted"}

_NAME_LAYOUT = {"width": "11em", "min_width": "8em", "margin": "2px 8px 2px 0"}


class _BackendRow:
    """One backend: a button that picks it and an HTML line with badge, type, URL and reason."""

    def __init__(self, name: str, choose: Callable[[str], None]) -> None:
        self.name = name
        self.state = CHECKING
        self.reason: str | None = None
        self.info: BackendStatusInfo | None = None
        self.button = widgets.Button(
            description=name,
            tooltip=f"Show the models of {name}",
            layout=widgets.Layout(**_NAME_LAYOUT),
        )
        self.button.on_click(lambda _b: choose(name))
        self.html = widgets.HTML(layout=widgets.Layout(flex="1 1 16em", min_width="0"))
        self.box = widgets.HBox(
            [self.button, self.html],
            layout=widgets.Layout(flex_flow="row wrap", align_items="center", width="100%"),
        )

    def render(self, redact: s.Redactor) -> None:
        reason = redact(self.reason)
        label = {CHECKING: "checking…"}.get(self.state, self.state)
        info = self.info
        kind = (info.get("display_name") or info.get("type") or "") if info is not None else ""
        url = redact(info.get("base_url") if info is not None else None) or "runs in this kernel"
        parts = [
            s.badge(label, _BADGE_KIND[self.state], reason or None),
            f'<span style="{s.MUTED}">{s.esc(kind)}</span>',
            f'<span style="{s.MUTED};{s.SMALL};overflow-wrap:anywhere">{s.esc(url)}</span>',
        ]
        if reason:
            colour = s.COLOURS["error" if self.state == UNAVAILABLE else "muted"]
            parts.append(
                f'<span title="{s.esc(reason)}" style="flex-basis:100%;color:{colour};'
                f'{s.SMALL};overflow-wrap:anywhere">{s.esc(reason)}</span>'
            )
        self.html.value = s.block(
            "".join(parts), "display:flex;flex-wrap:wrap;align-items:center;gap:2px 10px"
        )
        self.html.tooltip = reason or None


class BackendPicker(widgets.VBox):
    """Configured backends with a live status; pick one to filter the catalog.

    ``value`` is the chosen backend's name, or None for all of them.
    """

    value = Unicode(None, allow_none=True, help="The chosen backend (None: all).")

    def __init__(
        self, *, session: KernelSession | None = None, autoload: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # ipywidgets is untyped
        self.session = session if session is not None else get_session()
        self.result: RegistryAnswer | None = None
        self.rows: dict[str, _BackendRow] = {}
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._job = BackgroundJob("backend-probe")
        self.redact = s.Redactor.from_session(self.session)

        self.title = widgets.HTML(s.heading("Backends"))
        self.refresh_button = widgets.Button(
            description="Refresh",
            icon="refresh",
            tooltip="Check every backend again (runs in the background)",
            layout=widgets.Layout(width="auto"),
        )
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.all_button = widgets.Button(
            description="All backends",
            tooltip="Show the models of every backend",
            button_style="primary",
            layout=widgets.Layout(**_NAME_LAYOUT),
        )
        self.all_button.on_click(lambda _b: self.choose(None))
        self.message = widgets.HTML()
        self._rows_box = widgets.VBox(layout=widgets.Layout(width="100%"))
        header = widgets.HBox(
            [self.title, self.refresh_button],
            layout=widgets.Layout(
                flex_flow="row wrap", justify_content="space-between", align_items="center"
            ),
        )
        self.children = [header, self.all_button, self._rows_box, self.message]
        self.layout.width = "100%"
        self.observe(self._on_value, "value")

        self._build_rows()
        if autoload:
            self.refresh()

    # --- public -------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Probe every backend on a background thread; returns at once (False if one runs)."""
        with self._lock:
            if self._job.running:
                return False
            self.refresh_button.disabled = True
            self.refresh_button.description = "Checking…"
            for row in self.rows.values():
                row.state = CHECKING
                row.render(self.redact)
        return self._job.start(self._probe, self._probed)

    def wait(self, timeout: float | None = 30) -> bool:
        """Wait for a running refresh (scripts and tests); True once none runs."""
        return self._job.wait(timeout)

    @property
    def refreshing(self) -> bool:
        return self._job.running

    def on_refresh(self, callback: Listener) -> None:
        """Call ``callback(registry.available())`` after each refresh, on the probing thread."""
        self._listeners.append(callback)

    def choose(self, name: str | None) -> None:
        self.value = name

    def status_of(self, name: str) -> tuple[str, str | None]:
        """(``available``/``unavailable``/``disabled``/``checking``, reason) as shown."""
        row = self.rows[name]
        return row.state, self.redact(row.reason) or None

    def close(self) -> None:
        close_tree(self)

    # --- internals ----------------------------------------------------------------------------
    def _build_rows(self) -> None:
        """Rows from the configuration alone (no network), marked 'checking…'."""
        try:
            statuses = self.session.loader.statuses
        except LocalMindError as exc:
            self.message.value = s.note(self.redact(str(exc)), "error")
            return
        for name, status in statuses.items():
            row = _BackendRow(name, self.choose)
            backend = status.backend
            row.info = {
                "name": name,
                "type": status.type,
                "enabled": status.enabled,
                "available": status.available,
                "reason": status.reason,
                "display_name": backend.display_name if backend is not None else status.type,
            }
            base_url = getattr(backend, "base_url", None)
            if isinstance(base_url, str):
                row.info["base_url"] = base_url
            if not status.enabled:
                row.state, row.reason = DISABLED, status.reason
            elif status.backend is None:
                row.state, row.reason = UNAVAILABLE, status.reason
            self.rows[name] = row
            row.render(self.redact)
        self._rows_box.children = [row.box for row in self.rows.values()]

    def _probe(self) -> RegistryAnswer:
        result = self.session.registry.available(probe=True)
        self.redact = s.Redactor.from_session(self.session)  # the config may have been reloaded
        return result

    def _probed(self, result: RegistryAnswer | None, error: BaseException | None) -> None:
        with self._lock:
            self.refresh_button.disabled = False
            self.refresh_button.description = "Refresh"
            if error is not None or result is None:
                self.message.value = s.note(
                    self.redact(f"could not check the backends: {error}"), "error"
                )
                for row in self.rows.values():
                    if row.state == CHECKING:
                        row.state = UNAVAILABLE
                        row.render(self.redact)
                return
            self.message.value = ""
            self.result = result
            for name, entry in result["backends"].items():
                found = self.rows.get(name)
                if found is None:  # configured after this picker was built
                    found = self.rows[name] = _BackendRow(name, self.choose)
                    self._rows_box.children = [*self._rows_box.children, found.box]
                info = entry["info"]
                found.info = info
                found.reason = info.get("reason")
                if not info.get("enabled", True):
                    found.state = DISABLED
                else:
                    found.state = AVAILABLE if info.get("available") else UNAVAILABLE
                found.render(self.redact)
        for callback in list(self._listeners):
            callback(result)

    def _on_value(self, change: dict[str, Any]) -> None:
        chosen = change["new"]
        self.all_button.button_style = "primary" if chosen is None else ""
        for name, row in self.rows.items():
            row.button.button_style = "primary" if name == chosen else ""
