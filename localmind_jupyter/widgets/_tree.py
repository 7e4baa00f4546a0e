"""Closing a composite widget closes every part, so the browser forgets all of its models."""

from __future__ import annotations

import ipywidgets as widgets


def _parts(widget: widgets.Widget) -> list[widgets.Widget]:
    parts = list(getattr(widget, "children", ()) or ())
    for name in ("layout", "style"):
        part = getattr(widget, name, None)
        if isinstance(part, widgets.Widget):
            parts.append(part)
    return parts


def close_tree(root: widgets.Widget) -> None:
    """Close ``root`` and everything inside it (each part through its own ``close``)."""
    for part in _parts(root):
        if isinstance(part, widgets.Box):
            part.close()  # a composite part closes its own parts
            close_tree(part)
        else:
            part.close()
    widgets.Widget.close(root)
