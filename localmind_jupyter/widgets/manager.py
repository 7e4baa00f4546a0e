"""``ModelManager``: backend picker, model catalog, Compare and downloads in one panel.

The widgets share one probe (the picker's refresh feeds the catalog and the Compare
panel's list of installed models), one downloads panel (a finished download marks the
catalog's model installed) and the kernel's session (Use sets what ``%%localmind`` runs next).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
from traitlets import dlink

from ..core.downloads import DONE
from ..session import KernelSession, get_session
from . import _style as s
from ._tree import close_tree
from .catalog import ModelCatalog
from .compare_panel import ComparePanel
from .picker import BackendPicker
from .progress import DownloadProgress

if TYPE_CHECKING:
    from ..core.downloads import DownloadStatus


class ModelManager(widgets.VBox):
    """The whole model manager; ``%localmind manager`` displays one.

    >>> from localmind_jupyter import ModelManager
    >>> ModelManager()  # the last expression of a cell shows the panel
    """

    def __init__(
        self, *, session: KernelSession | None = None, autoload: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # ipywidgets is untyped
        self.session = session if session is not None else get_session()
        self.downloads = DownloadProgress(session=self.session)
        self.picker = BackendPicker(session=self.session, autoload=False)
        self.catalog = ModelCatalog(
            session=self.session,
            downloads=self.downloads,
            autoload=False,
            show_backend_filter=False,
        )
        self.compare_panel = ComparePanel(session=self.session)
        self.picker.on_refresh(self.catalog.set_data)
        self.picker.on_refresh(self.compare_panel.set_data)
        self.downloads.on_finished(self._download_finished)
        dlink((self.picker, "value"), (self.catalog, "backend"))

        self.title = widgets.HTML(
            s.block(
                '<span style="font-weight:600;font-size:var(--jp-ui-font-size3,17px)">'
                "LocalMind models</span>"
                f'<span style="{s.MUTED};{s.SMALL};margin-left:10px">'
                "downloads run in the background: keep working while they run</span>",
                "display:flex;flex-wrap:wrap;align-items:baseline",
            )
        )
        section = {"width": "100%", "padding": "6px 0 2px"}
        self.children = [
            self.title,
            widgets.Box([self.picker], layout=widgets.Layout(**section)),
            widgets.Box([self.catalog], layout=widgets.Layout(**section)),
            widgets.Box([self.compare_panel], layout=widgets.Layout(**section)),
            widgets.Box([self.downloads], layout=widgets.Layout(**section)),
        ]
        self.layout.width = "100%"
        self.layout.max_width = "1100px"
        self.layout.padding = "8px 12px"
        self.layout.border = "1px solid var(--jp-border-color2, #e0e0e0)"
        self.add_class("localmind-model-manager")  # type: ignore[no-untyped-call]  # ipywidgets is untyped
        if autoload:
            self.refresh()

    def _download_finished(self, status: DownloadStatus) -> None:
        """A model just downloaded can be compared at once, without a refresh."""
        if status.state == DONE:
            self.compare_panel.add(f"{status.backend}:{status.model}")

    def refresh(self) -> bool:
        """Probe the backends and reload the catalog, on a background thread."""
        return self.picker.refresh()

    def close(self) -> None:
        """Close the panel and its parts; running downloads go on in the kernel."""
        for part in (self.picker, self.catalog, self.compare_panel, self.downloads):
            part.close()
        close_tree(self)

    def wait(self, timeout: float | None = 30) -> bool:
        """Wait for background refreshes (scripts and tests); downloads have their own wait."""
        return (
            self.picker.wait(timeout)
            and self.catalog.wait(timeout)
            and self.compare_panel.wait(timeout)
        )
