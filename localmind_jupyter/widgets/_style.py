"""Small HTML builders shared by the widgets, so every panel looks the same in any theme.

Colours come only from JupyterLab's CSS variables (``--jp-*``), which the light and
dark themes both define, with a neutral fallback for front ends that lack them
(VS Code, classic Notebook). Numbers that change while a download runs sit in
fixed-width, tabular-figure boxes so nothing shifts as they move.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..core.model_registry import human_size
from ..secrets import redact, register_config

if TYPE_CHECKING:
    from ..session import KernelSession

#: Base text style of every widget's HTML: the notebook's UI font, size and colour.
FONT = (
    "font-family:var(--jp-ui-font-family,system-ui,sans-serif);"
    "font-size:var(--jp-ui-font-size1,13px);"
    "color:var(--jp-ui-font-color1,inherit);line-height:1.45"
)
MUTED = "color:var(--jp-ui-font-color2,#757575)"
SMALL = "font-size:var(--jp-ui-font-size0,11px)"

#: Semantic colour per badge kind.
COLOURS = {
    "ok": "var(--jp-success-color1,#388e3c)",
    "error": "var(--jp-error-color1,#d32f2f)",
    "warn": "var(--jp-warn-color1,#f57c00)",
    "info": "var(--jp-brand-color1,#1976d2)",
    "muted": "var(--jp-ui-font-color2,#757575)",
}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def badge(text: str, kind: str = "muted", title: str | None = None) -> str:
    """An outlined pill: readable on light and dark backgrounds alike."""
    colour = COLOURS.get(kind, COLOURS["muted"])
    tip = f' title="{esc(title)}"' if title else ""
    return (
        f'<span{tip} style="display:inline-block;padding:0 7px;border-radius:9px;'
        f"border:1px solid {colour};color:{colour};{SMALL};line-height:16px;"
        f'white-space:nowrap;vertical-align:middle">{esc(text)}</span>'
    )


def chip(text: str) -> str:
    """A tag: filled with the theme's secondary layout colour."""
    return (
        '<span style="display:inline-block;padding:0 6px;margin:0 3px 0 0;border-radius:3px;'
        "background:var(--jp-layout-color2,#eee);color:var(--jp-ui-font-color1,inherit);"
        f'{SMALL};line-height:16px;white-space:nowrap">{esc(text)}</span>'
    )


def fixed(
    text: str, width_em: float, align: str = "right", style: str = "", title: str | None = None
) -> str:
    """A fixed-width box with tabular figures: changing numbers never move their neighbours."""
    tip = f' title="{esc(title)}"' if title else ""
    return (
        f'<span{tip} style="display:inline-block;width:{width_em}em;text-align:{align};'
        "font-variant-numeric:tabular-nums;white-space:nowrap;overflow:hidden;"
        f'text-overflow:ellipsis;vertical-align:bottom;{style}">{esc(text)}</span>'
    )


def block(inner: str, style: str = "") -> str:
    """The outer element of a widget's HTML: theme font and colour, wraps at narrow widths."""
    return f'<div style="{FONT};{style}">{inner}</div>'


def heading(text: str, note: str = "") -> str:
    extra = f' <span style="{MUTED};{SMALL};font-weight:normal">{esc(note)}</span>' if note else ""
    return block(
        f"{esc(text)}{extra}",
        "font-weight:600;font-size:var(--jp-ui-font-size2,15px);margin:2px 0",
    )


def note(text: str, kind: str = "muted") -> str:
    """A one-line message under a toolbar (errors in the error colour, others muted)."""
    if not text:
        return ""
    colour = COLOURS.get(kind, COLOURS["muted"])
    return block(esc(text), f"color:{colour};{SMALL};overflow-wrap:anywhere")


# --- numbers -------------------------------------------------------------------------------------
def size_text(size: int | float | None) -> str:
    return human_size(None if size is None else int(size))


def speed_text(speed: float | None) -> str:
    return f"{human_size(int(speed))}/s" if speed else "—"


def eta_text(seconds: float | None) -> str:
    """``0:42``, ``12:05``, ``2:03:00``: short and of near-constant width."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --- secrets -------------------------------------------------------------------------------------
class Redactor:
    """Scrubs secrets from every text a widget shows, through the one redactor of secrets.py.

    A widget's state is sent to the browser and saved in the notebook, so the front end
    redacts too, with the config's secrets (disabled backends' included) made known.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(secrets)

    @classmethod
    def from_session(cls, session: KernelSession) -> Redactor:
        # No config: the secrets already registered and the environment's still count.
        with contextlib.suppress(Exception):
            register_config(session.loader.config)
        return cls()

    def __call__(self, text: str | None) -> str:
        return redact(text, *self.secrets)


def join_html(parts: Iterable[str], sep: str = " ") -> str:
    return sep.join(p for p in parts if p)
