"""``ModelCatalog``: what each backend offers, with sizes, whether it is installed, and actions.

The data is the registry's ``available()`` answer, loaded on a background thread and
kept in a ``CatalogState`` (``catalog_state.py``: rows, filters, what can be downloaded;
no widgets); this module draws it. Selecting a model enables "Use" (the model of
``%%localmind`` here, as ``%localmind use``) and "Download", disabled with the reason
when there is nothing to download.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from traitlets import Unicode

from ..core.downloads import DONE, Download, DownloadStatus
from ..errors import LocalMindError
from ..session import KernelSession, get_session
from . import _style as s
from ._background import BackgroundJob
from ._catalog_rows import ModelRow as _ModelRow
from ._catalog_rows import header_html, selection_html
from ._tree import close_tree
from .catalog_state import CatalogState, Filters, Key, backend_problem, model_key_of
from .progress import DownloadProgress

if TYPE_CHECKING:
    from ..backends.contracts import CatalogRow, RegistryAnswer

ALL_TAGS = ""


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
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # ipywidgets is untyped
        self.session = session if session is not None else get_session()
        self.redact = s.Redactor.from_session(self.session)
        #: Rows, selection and every decision about them (no widgets: catalog_state.py).
        self.state = CatalogState()
        self._rows: dict[Key, _ModelRow] = {}
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

    @property
    def result(self) -> RegistryAnswer | None:
        """The ``registry.available()`` answer shown (with the marks of finished downloads)."""
        return self.state.result

    @property
    def selected(self) -> Key | None:
        return self.state.selected

    # --- data ---------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the registry (probing the backends) on a background thread; returns at once."""
        return self._job.start(lambda: self.session.registry.available(probe=True), self._loaded)

    def set_data(self, result: RegistryAnswer) -> None:
        """Show a ``registry.available()`` answer (the model manager passes the picker's)."""
        with self._lock:
            self.redact = s.Redactor.from_session(self.session)  # the config may have changed
            self.state.set_data(result)
            self._sync_rows()
            names = self.state.backends()
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

    def model(self, backend: str, name: str) -> CatalogRow:
        """The catalog entry as shown (``installed``, ``size``, ``tags``, …)."""
        return self.state.models[(backend, name)].copy()

    def visible(self) -> list[Key]:
        """(backend, model) of the rows the filters let through, in display order."""
        with self._lock:
            return self.state.visible(self._filters())

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
            if (backend, name) not in self.state.models:
                raise KeyError(f"{backend}:{name} is not in the catalog")
            previous, self.state.selected = self.state.selected, (backend, name)
            for key in (previous, self.state.selected):
                self._render_key(key)
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
        needs = self.state.needs_download((backend, name))
        hint = " (not installed yet: download it)" if needs else ""
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
    def _loaded(self, result: RegistryAnswer | None, error: BaseException | None) -> None:
        if error is not None or result is None:
            self.count.value = s.note(self.redact(f"could not load the catalog: {error}"), "error")
            return
        self.set_data(result)

    def _sync_rows(self) -> None:
        """One widget row per state row: new ones built, gone ones closed."""
        for key in self.state.models:
            if key not in self._rows:
                self._rows[key] = _ModelRow(key[0], key[1], self.select)
        for key in [k for k in self._rows if k not in self.state.models]:
            close_tree(self._rows.pop(key).box)

    def _download_finished(self, status: DownloadStatus) -> None:
        """Mark a finished download installed at once, then fetch the backend's real list."""
        key = (status.backend, status.model)
        with self._lock:
            if status.state == DONE:
                key_of = model_key_of(self.session.loader, status.backend)
                self.state.mark_installed(status.backend, status.model, key_of)
                self._sync_rows()
                self._render_all()
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

    def _refresh_backend(self, backend: str) -> None:
        try:
            models = self.session.registry.models(backend)
        except LocalMindError:
            return  # keep the optimistic mark; the next reload corrects it
        with self._lock:
            if self.state.result is not None and backend in self.state.result["backends"]:
                self.state.result["backends"][backend]["models"] = models
                self.set_data(self.state.result)

    # --- internals: display ---------------------------------------------------------------------
    def _filters(self) -> Filters:
        return Filters(
            backend=self.backend,
            installed_only=bool(self.installed_only.value),
            tag=self.tag.value or "",
            search=self.search.value,
        )

    def _render_key(self, key: Key | None) -> None:
        row = self._rows.get(key) if key is not None else None
        if key is None or row is None:
            return
        assert self.downloads is not None
        row.render(
            self.state.models[key],
            selected=self.selected == key,
            in_use=self.session.chosen_model == f"{row.backend}:{row.name}",
            downloading=self.downloads.active(row.backend, row.name),
        )

    def _render_all(self) -> None:
        for key in self._rows:
            self._render_key(key)
        self._refilter()

    def _refilter(self) -> None:
        with self._lock:
            children: list[widgets.Widget] = []
            current: str | None = None
            shown = self.state.visible(self._filters())
            for key in shown:
                if key[0] != current:
                    current = key[0]
                    children.append(self._header(current))
                children.append(self._rows[key].box)
            self._list.children = children
            if self.state.result is not None:
                total = self.state.total(self.backend)
                text = (
                    f"{len(shown)} of {total} models" if shown else "No model matches the filters."
                )
                self.count.value = s.note(text)
            self._update_actions()

    def _header(self, backend: str) -> widgets.HTML:
        value = header_html(
            backend, self.state.info(backend), self.state.counts(backend), self.redact
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
        tags = self.state.tags(self.backend)
        current = self.tag.value
        self.tag.options = [("all tags", ALL_TAGS), *[(t, t) for t in tags]]
        self.tag.value = current if current in tags else ALL_TAGS

    # --- internals: actions ---------------------------------------------------------------------
    def _download_block(self) -> str | None:
        """Why the selection cannot be downloaded, or None (decided by the state)."""
        assert self.downloads is not None
        reason = self.state.download_block(
            downloading=self.downloads.active,
            problem=lambda backend: backend_problem(self.session.loader, backend),
        )
        return None if reason is None else self.redact(reason)

    def _update_actions(self) -> None:
        chosen = self.session.chosen_model
        model = self.state.models[self.selected] if self.selected is not None else None
        self.selection.value = selection_html(self.selected, model, chosen)
        self.use_button.disabled = self.selected is None
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
