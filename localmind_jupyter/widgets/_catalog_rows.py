"""The catalog's drawn parts: one widget row per model, the backend headers, the selection.

Pure drawing: what is shown comes from ``CatalogState`` (``catalog_state.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..core.model_registry import human_size
from . import _style as s

if TYPE_CHECKING:
    from ..backends.contracts import BackendStatusInfo, CatalogRow

_SELECT_LAYOUT = {"width": "2.4em", "min_width": "2.4em", "margin": "0 6px 0 0", "padding": "0"}


class ModelRow:
    """One model: a select button and an HTML line (name, size, badges, tags, description)."""

    def __init__(self, backend: str, name: str, select: Callable[[str, str], None]):
        self.backend = backend
        self.name = name
        self.button = widgets.Button(
            description="",
            tooltip=f"Select {name}",
            layout=widgets.Layout(**_SELECT_LAYOUT),
        )
        self.button.on_click(lambda _b: select(self.backend, self.name))
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

    def render(self, m: CatalogRow, selected: bool, in_use: bool, downloading: bool) -> None:
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


def header_html(
    backend: str, info: BackendStatusInfo | None, counts: tuple[int, int], redact: s.Redactor
) -> str:
    """The line above a backend's rows: name, kind, available or why not, counts."""
    installed, listed = counts
    if info is None:  # the registry's answer does not list this backend
        available, reason, kind = None, None, ""
    else:
        available, reason = info.get("available"), info.get("reason")
        kind = info.get("display_name") or info.get("type") or ""
    state = (
        s.badge("available", "ok")
        if available
        else s.badge("unavailable", "error", redact(reason) or None)
    )
    return s.block(
        f'<span style="font-weight:600">{s.esc(backend)}</span> '
        f'<span style="{s.MUTED}">{s.esc(kind)}</span> {state} '
        f'<span style="{s.MUTED};{s.SMALL}">{installed} installed · {listed} listed</span>',
        "padding:6px 4px 2px;border-bottom:1px solid var(--jp-border-color2,#e0e0e0)",
    )


def selection_html(
    selected: tuple[str, str] | None, model: CatalogRow | None, chosen: str | None
) -> str:
    """ "Selected backend:model size", and which model ``%%localmind`` uses now."""
    using = (
        f'<span style="{s.MUTED};{s.SMALL}"> · %%localmind uses {s.esc(chosen)}</span>'
        if chosen
        else ""
    )
    if selected is None or model is None:
        return s.block(f'<span style="{s.MUTED}">No model selected</span>{using}')
    backend, name = selected
    size = model.get("size_human") if model.get("size") else ""
    return s.block(
        f'<span style="{s.MUTED}">Selected</span> '
        f'<b style="overflow-wrap:anywhere">{s.esc(backend)}:{s.esc(name)}</b> '
        f'<span style="{s.MUTED}">{s.esc(size)}</span>{using}'
    )
