"""``ModelCatalog``: what each backend offers, with sizes, whether it is installed, and actions.

The data is the registry's ``available()`` answer (catalog merged with what is
installed), loaded on a background thread. Selecting a model enables "Use" (the
model of ``%%localmind`` in this kernel, as ``%localmind use``) and "Download",
which is disabled with the reason when there is nothing to download.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from traitlets import Unicode

from ..backends.base import BaseBackend
from ..core.downloads import DONE, Download, DownloadStatus
from ..core.model_registry import _canonical, human_size
from ..errors import LocalMindError
from ..session import KernelSession, get_session
from . import _style as s
from ._background import BackgroundJob
from ._tree import close_tree
from .progress import DownloadProgress

ALL_TAGS = ""
_SELECT_LAYOUT = {"width": "2.4em", "min_width": "2.4em", "margin": "0 6px 0 0", "padding": "0"}


class _ModelRow:
    """One model: a select button and an HTML line (name, size, badges, tags, description)."""

    def __init__(self, backend: str, model: dict[str, Any], select: Callable[[str, str], None]):
        self.backend = backend
        self.model = model
        self.button = widgets.Button(
            description="",
            tooltip=f"Select {model['name']}",
            layout=widgets.Layout(**_SELECT_LAYOUT),
        )
        self.button.on_click(lambda _b: select(self.backend, self.model["name"]))
        self.html = widgets.HTML(
            layout=widgets.Layout(flex="1 1 auto", width="auto", min_width="0")
        )
        self.box = widgets.HBox(
            [self.button, self.html],
            # flex 0 0 auto: rows keep their height inside the scrolling list, never squeezed
            layout=widgets.Layout(
                align_items="center", width="100%", margin="1px 0", flex="0 0 auto"
            ),
        )

    @property
    def name(self) -> str:
        return str(self.model["name"])

    def haystack(self) -> str:
        m = self.model
        return " ".join(
            str(x) for x in (m["name"], m.get("description"), m.get("parameters"), *m["tags"]) if x
        ).lower()

    def render(self, selected: bool, in_use: bool, downloading: bool) -> None:
        m = self.model
        badges = []
        if m["installed"]:
            badges.append(s.badge("installed", "ok"))
        if downloading:
            badges.append(s.badge("downloading", "info"))
        if in_use:
            badges.append(s.badge("in use", "info", "%%localmind uses this model in this kernel"))
        size = m.get("size_human") or human_size(m.get("size"))
        first = (
            '<span style="font-weight:600;min-width:min(13em,100%);flex:0 1 auto;'
            'overflow-wrap:anywhere">'
            f"{s.esc(m['name'])}</span>"
            + s.fixed(size if m.get("size") else "—", 5.5, style=s.MUTED)
            + s.fixed(m.get("parameters") or "", 4.5, style=s.MUTED)
            + "".join(badges)
            + '<span style="flex:1 1 auto"></span>'
            + "".join(s.chip(tag) for tag in m["tags"])
        )
        description = m.get("description") or ""
        second = (
            f'<div style="{s.MUTED};{s.SMALL};flex-basis:100%;overflow-wrap:anywhere">'
            f"{s.esc(description)}</div>"
            if description
            else ""
        )
        background = (
            "background:var(--jp-rendermime-table-row-hover-background,#e1f5fe);"
            "box-shadow:inset 3px 0 0 var(--jp-brand-color1,#1976d2);"
            if selected
            else ""
        )
        self.html.value = s.block(
            first + second,
            "display:flex;flex-wrap:wrap;align-items:center;gap:1px 10px;"
            f"padding:3px 8px;border-radius:3px;{background}",
        )
        self.button.icon = "check" if selected else ""
        self.button.button_style = "primary" if selected else ""


class ModelCatalog(widgets.VBox):
    """Models of every backend, installed first, with search, tag filter, Use and Download.

    ``backend`` filters to one backend (None: all). Without a ``downloads`` panel
    the catalog shows its own below the list.
    """

    backend = Unicode(None, allow_none=True, help="Show only this backend (None: all).")

    def __init__(
        self,
        *,
        session: KernelSession | None = None,
        downloads: DownloadProgress | None = None,
        autoload: bool = True,
        show_backend_filter: bool = True,
        list_height: str = "24em",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.session = session if session is not None else get_session()
        self.redact = s.Redactor.from_session(self.session)
        self.result: dict[str, Any] | None = None
        self.selected: tuple[str, str] | None = None
        self._rows: dict[tuple[str, str], _ModelRow] = {}
        self._headers: dict[str, widgets.HTML] = {}
        self._lock = threading.RLock()
        self._job = BackgroundJob("catalog")
        self._threads: list[threading.Thread] = []

        self.title = widgets.HTML(s.heading("Models"))
        self.search = widgets.Text(
            placeholder="Search name, description, tag…",
            continuous_update=True,
            layout=widgets.Layout(flex="1 1 14em", min_width="10em", width="auto"),
        )
        self.tag = widgets.Dropdown(
            options=[("all tags", ALL_TAGS)],
            value=ALL_TAGS,
            layout=widgets.Layout(width="10em"),
        )
        self.installed_only = widgets.Checkbox(
            description="installed only", indent=False, layout=widgets.Layout(width="auto")
        )
        self.backend_filter = widgets.Dropdown(
            options=[("all backends", "")], value="", layout=widgets.Layout(width="11em")
        )
        self.count = widgets.HTML(s.note("Loading the catalog…"))
        self._list = widgets.VBox(
            layout=widgets.Layout(
                max_height=list_height,
                overflow="auto",
                width="100%",
                padding="2px",
                border="1px solid var(--jp-border-color2, #e0e0e0)",
            )
        )
        self.selection = widgets.HTML(layout=widgets.Layout(flex="1 1 16em", width="auto"))
        self.use_button = widgets.Button(
            description="Use",
            icon="check",
            button_style="primary",
            tooltip="Make it the model of %%localmind in this kernel (as %localmind use)",
            disabled=True,
            layout=widgets.Layout(width="7em"),
        )
        self.download_button = widgets.Button(
            description="Download",
            icon="download",
            disabled=True,
            layout=widgets.Layout(width="9em"),
        )
        self.reason = widgets.HTML()
        self.message = widgets.HTML()
        self.use_button.on_click(lambda _b: self.use())
        self.download_button.on_click(lambda _b: self.download())

        filters = [self.search, self.tag, self.installed_only]
        if show_backend_filter:
            filters.insert(1, self.backend_filter)
        wrap = {"flex_flow": "row wrap", "align_items": "center", "width": "100%"}
        toolbar = widgets.HBox(filters, layout=widgets.Layout(**wrap, grid_gap="4px 8px"))
        actions = widgets.HBox(
            [self.selection, self.use_button, self.download_button],
            layout=widgets.Layout(**wrap, grid_gap="4px 8px"),
        )
        children: list[widgets.Widget] = [
            self.title,
            toolbar,
            self.count,
            self._list,
            actions,
            self.reason,
            self.message,
        ]
        self.downloads = downloads
        if downloads is None:
            self.downloads = DownloadProgress(session=self.session)
            children.append(self.downloads)
        assert self.downloads is not None
        self.downloads.on_finished(self._download_finished)
        self.downloads.on_changed(self._download_finished)  # redraws "downloading" on the row
        self.children = children
        self.layout.width = "100%"

        for control in (self.search, self.tag, self.installed_only):
            control.observe(lambda _c: self._refilter(), "value")
        self.backend_filter.observe(self._on_backend_filter, "value")
        self.observe(self._on_backend, "backend")
        self._update_actions()
        if autoload:
            self.reload()

    # --- data ---------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the registry (probing the backends) on a background thread; returns at once."""
        return self._job.start(lambda: self.session.registry.available(probe=True), self._loaded)

    def set_data(self, result: dict[str, Any]) -> None:
        """Show a ``registry.available()`` answer (the model manager passes the picker's)."""
        with self._lock:
            self.result = result
            self.redact = s.Redactor.from_session(self.session)  # the config may have changed
            wanted: set[tuple[str, str]] = set()
            for backend, entry in result["backends"].items():
                for model in entry["models"]:
                    key = (backend, model["name"])
                    wanted.add(key)
                    row = self._rows.get(key)
                    if row is None:
                        self._rows[key] = _ModelRow(backend, dict(model), self.select)
                    else:
                        row.model = dict(model)
            for key in [k for k in self._rows if k not in wanted]:
                close_tree(self._rows.pop(key).box)
            if self.selected not in self._rows:
                self.selected = None
            names = list(result["backends"])
            self.backend_filter.options = [("all backends", ""), *[(n, n) for n in names]]
            self.backend_filter.value = self.backend if self.backend in names else ""
            self._refresh_tags()
            self._render_all()

    def wait(self, timeout: float | None = 30) -> bool:
        """Wait for loading and post-download refreshes (scripts and tests)."""
        done = self._job.wait(timeout)
        for thread in list(self._threads):
            thread.join(timeout)
        return done and not any(t.is_alive() for t in self._threads)

    def model(self, backend: str, name: str) -> dict[str, Any]:
        """The catalog entry as shown (``installed``, ``size``, ``tags``, …)."""
        return dict(self._rows[(backend, name)].model)

    def visible(self) -> list[tuple[str, str]]:
        """(backend, model) of the rows the filters let through, in display order."""
        with self._lock:
            return [(r.backend, r.name) for r in self._ordered() if self._matches(r)]

    def close(self) -> None:
        """Close every row, shown or filtered out, and the catalog itself."""
        with self._lock:
            parts = [r.box for r in self._rows.values()] + list(self._headers.values())
        for part in parts:
            close_tree(part)
        if self.downloads is not None:  # a shared panel outlives this catalog
            self.downloads.remove_listener(self._download_finished)
        close_tree(self)

    # --- selection and actions ------------------------------------------------------------------
    def select(self, backend: str, name: str) -> None:
        with self._lock:
            if (backend, name) not in self._rows:
                raise KeyError(f"{backend}:{name} is not in the catalog")
            previous, self.selected = self.selected, (backend, name)
            for key in (previous, self.selected):
                if key in self._rows:
                    self._render_row(self._rows[key])
            self._update_actions()

    @property
    def download_reason(self) -> str | None:
        """Why Download is disabled for the selection (None when it is enabled)."""
        with self._lock:
            return self._download_block()

    def use(self) -> str | None:
        """Make the selection the model of ``%%localmind`` here; returns ``backend:model``."""
        if self.selected is None:
            return None
        backend, name = self.selected
        try:
            backend_obj, model = self.session.resolve(f"{backend}:{name}", None)
        except LocalMindError as exc:
            self.message.value = s.note(self.redact(str(exc)), "error")
            return None
        spec = f"{backend_obj.name}:{model}"
        self.session.chosen_model = spec
        installed = self._rows[(backend, name)].model["installed"]
        hint = (
            "" if installed or self._remote(backend, name) else " (not installed yet: download it)"
        )
        self.message.value = s.note(f"%%localmind now uses {spec} in this kernel{hint}", "ok")
        with self._lock:
            self._render_all()
        return spec

    def download(self) -> Download | None:
        """Download the selection through the downloads panel; returns the Download or None."""
        with self._lock:
            if self.selected is None or self._download_block() is not None:
                return None
            backend, name = self.selected
        assert self.downloads is not None
        try:
            download = self.downloads.start(backend, name)
        except LocalMindError as exc:
            self.message.value = s.note(self.redact(str(exc)), "error")
            return None
        self.message.value = ""
        with self._lock:
            self._render_key((backend, name))
            self._update_actions()
        return download

    # --- internals: loading ---------------------------------------------------------------------
    def _loaded(self, result: dict[str, Any] | None, error: BaseException | None) -> None:
        if error is not None or result is None:
            self.count.value = s.note(self.redact(f"could not load the catalog: {error}"), "error")
            return
        self.set_data(result)

    def _download_finished(self, status: DownloadStatus) -> None:
        """Mark a finished download installed at once, then fetch the backend's real list."""
        key = (status.backend, status.model)
        with self._lock:
            if status.state == DONE:
                self._mark_installed(status.backend, status.model)
            self._render_key(key)
            self._update_actions()
        if status.state == DONE:
            thread = threading.Thread(
                target=self._refresh_backend,
                args=(status.backend,),
                name="localmind-catalog-installed",
                daemon=True,
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _mark_installed(self, backend: str, model: str) -> None:
        kind = self._info(backend).get("type", "")
        wanted = _canonical(model, kind)
        rows = [r for r in self._rows.values() if r.backend == backend]
        matched = [r for r in rows if _canonical(r.name, kind) == wanted]
        for row in matched:
            row.model["installed"] = True
        if not matched:  # a model the catalog does not list: show it until the refresh
            entry = {
                "name": model,
                "description": "installed locally",
                "size": None,
                "size_human": human_size(None),
                "parameters": None,
                "tags": [],
                "license": None,
                "installed": True,
                "in_catalog": False,
            }
            self._rows[(backend, model)] = _ModelRow(backend, entry, self.select)
        self._sync_result(backend)
        self._render_all()

    def _refresh_backend(self, backend: str) -> None:
        try:
            models = self.session.registry.models(backend)
        except LocalMindError:
            return  # keep the optimistic mark; the next reload corrects it
        with self._lock:
            if self.result is None or backend not in self.result["backends"]:
                return
            self.result["backends"][backend]["models"] = models
            self.set_data(self.result)

    def _sync_result(self, backend: str) -> None:
        """Keep ``result`` in step with the rows (so a later set_data keeps the marks)."""
        if self.result is None or backend not in self.result["backends"]:
            return
        rows = [r.model for r in self._ordered() if r.backend == backend]
        self.result["backends"][backend]["models"] = rows

    # --- internals: display ---------------------------------------------------------------------
    def _info(self, backend: str) -> dict[str, Any]:
        if self.result is None:
            return {}
        entry = self.result["backends"].get(backend)
        return dict(entry["info"]) if entry else {}

    def _ordered(self) -> list[_ModelRow]:
        """Backends in config order; in each, installed first, then catalog order."""
        order = {name: i for i, name in enumerate((self.result or {}).get("backends", {}))}
        rows = list(self._rows.values())
        return sorted(
            rows, key=lambda r: (order.get(r.backend, len(order)), not r.model["installed"])
        )

    def _matches(self, row: _ModelRow) -> bool:
        if self.backend and row.backend != self.backend:
            return False
        if self.installed_only.value and not row.model["installed"]:
            return False
        if self.tag.value and self.tag.value not in row.model["tags"]:
            return False
        words = self.search.value.lower().split()
        haystack = row.haystack() if words else ""
        return all(word in haystack for word in words)

    def _render_row(self, row: _ModelRow) -> None:
        in_use = self.session.chosen_model == f"{row.backend}:{row.name}"
        assert self.downloads is not None
        row.render(
            selected=self.selected == (row.backend, row.name),
            in_use=in_use,
            downloading=self.downloads.active(row.backend, row.name),
        )

    def _render_key(self, key: tuple[str, str]) -> None:
        row = self._rows.get(key)
        if row is not None:
            self._render_row(row)

    def _render_all(self) -> None:
        for row in self._rows.values():
            self._render_row(row)
        self._refilter()

    def _refilter(self) -> None:
        with self._lock:
            children: list[widgets.Widget] = []
            shown = 0
            current: str | None = None
            for row in self._ordered():
                if not self._matches(row):
                    continue
                if row.backend != current:
                    current = row.backend
                    children.append(self._header(row.backend))
                children.append(row.box)
                shown += 1
            self._list.children = children
            total = sum(
                1 for r in self._rows.values() if not self.backend or r.backend == self.backend
            )
            if self.result is not None:
                text = f"{shown} of {total} models" if shown else "No model matches the filters."
                self.count.value = s.note(text)
            self._update_actions()

    def _header(self, backend: str) -> widgets.HTML:
        info = self._info(backend)
        rows = [r for r in self._rows.values() if r.backend == backend]
        installed = sum(1 for r in rows if r.model["installed"])
        state = (
            s.badge("available", "ok")
            if info.get("available")
            else s.badge("unavailable", "error", self.redact(info.get("reason")) or None)
        )
        kind = info.get("display_name") or info.get("type") or ""
        value = s.block(
            f'<span style="font-weight:600">{s.esc(backend)}</span> '
            f'<span style="{s.MUTED}">{s.esc(kind)}</span> {state} '
            f'<span style="{s.MUTED};{s.SMALL}">{installed} installed · {len(rows)} listed</span>',
            "padding:6px 4px 2px;border-bottom:1px solid var(--jp-border-color2,#e0e0e0)",
        )
        header = self._headers.get(backend)
        if header is None:
            header = self._headers[backend] = widgets.HTML(
                layout=widgets.Layout(width="100%", flex="0 0 auto")
            )
        if header.value != value:
            header.value = value
        return header

    def _refresh_tags(self) -> None:
        tags = sorted(
            {
                tag
                for r in self._rows.values()
                if not self.backend or r.backend == self.backend
                for tag in r.model["tags"]
            }
        )
        current = self.tag.value
        self.tag.options = [("all tags", ALL_TAGS), *[(t, t) for t in tags]]
        self.tag.value = current if current in tags else ALL_TAGS

    # --- internals: actions ---------------------------------------------------------------------
    def _remote(self, backend: str, name: str) -> bool:
        row = self._rows.get((backend, name))
        tags = row.model["tags"] if row else []
        return self._info(backend).get("downloads_models") is False or "remote" in tags

    def _download_block(self) -> str | None:
        """Why the selection cannot be downloaded, or None."""
        if self.selected is None:
            return "Select a model to use or download it."
        backend, name = self.selected
        info = self._info(backend)
        kind = info.get("display_name") or info.get("type") or backend
        if self._remote(backend, name):
            return f"{kind} backends serve remote models: there is nothing to download."
        try:
            backend_obj = self.session.loader.get(backend)
        except LocalMindError as exc:
            return self.redact(str(exc))
        if type(backend_obj).download_model is BaseBackend.download_model:
            return f"The {kind} backend cannot download models."
        if self._rows[self.selected].model["installed"]:
            return f"{name} is already installed."
        if info.get("available") is False:
            return self.redact(f"{backend} is unavailable: {info.get('reason')}")
        assert self.downloads is not None
        if self.downloads.active(backend, name):
            return "Downloading: see the progress below."
        return None

    def _update_actions(self) -> None:
        chosen = self.session.chosen_model
        using = (
            f'<span style="{s.MUTED};{s.SMALL}"> · %%localmind uses {s.esc(chosen)}</span>'
            if chosen
            else ""
        )
        if self.selected is None:
            self.selection.value = s.block(
                f'<span style="{s.MUTED}">No model selected</span>{using}'
            )
            self.use_button.disabled = True
        else:
            backend, name = self.selected
            row = self._rows[self.selected]
            size = row.model.get("size_human") if row.model.get("size") else ""
            self.selection.value = s.block(
                f'<span style="{s.MUTED}">Selected</span> '
                f'<b style="overflow-wrap:anywhere">{s.esc(backend)}:{s.esc(name)}</b> '
                f'<span style="{s.MUTED}">{s.esc(size)}</span>{using}'
            )
            self.use_button.disabled = False
        reason = self._download_block()
        self.download_button.disabled = reason is not None
        # The natural next step stands out: Download for a model not there yet, else Use.
        self.download_button.button_style = "" if reason else "primary"
        self.use_button.button_style = "primary" if reason else ""
        self.download_button.tooltip = reason or "Download this model (runs in the background)"
        self.reason.value = s.note(reason or "")

    def _on_backend_filter(self, change: dict[str, Any]) -> None:
        self.backend = change["new"] or None

    def _on_backend(self, change: dict[str, Any]) -> None:
        value = change["new"] or ""
        if value in [v for _l, v in self.backend_filter.options]:
            self.backend_filter.value = value
        with self._lock:
            self._refresh_tags()
            self._refilter()
