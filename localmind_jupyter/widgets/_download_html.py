"""What a download row says under its bar, drawn from one ``DownloadStatus``."""

from __future__ import annotations

from ..core.downloads import CANCELLED, DONE, FAILED, DownloadStatus
from . import _style as s

_OUTCOME = {
    DONE: ("done", "ok"),
    FAILED: ("failed", "error"),
    CANCELLED: ("cancelled", "warn"),
}


def details_html(status: DownloadStatus, redact: s.Redactor) -> str:
    """The line under a download's bar: what it does now, or how it ended."""
    size = (
        f"{s.size_text(status.completed)} / {s.size_text(status.total)}"
        if status.total
        else s.size_text(status.completed)
        if status.completed
        else "—"
    )
    if status.state in _OUTCOME:
        label, kind = _OUTCOME[status.state]
        if status.state == FAILED:
            text = redact(status.error or "the download failed")
            colour = s.COLOURS["error"]
        elif status.state == DONE:
            text, colour = "installed — ready to use", s.COLOURS["muted"]
        else:
            text, colour = "stopped; nothing was installed", s.COLOURS["muted"]
        took = ""
        if status.finished_at is not None:
            took = f" · {s.eta_text(status.finished_at - status.started_at)}"
        return s.block(
            f"{s.badge(label, kind)} "
            f'<span style="color:{colour};{s.SMALL};overflow-wrap:anywhere">'
            f"{s.esc(text)}</span>"
            f'<span style="{s.MUTED};{s.SMALL}"> · {s.esc(size)}{s.esc(took)}</span>',
        )
    activity = redact(status.status) or status.state
    eta = s.eta_text(status.eta) if status.state == "running" else "—"
    cells = [
        s.fixed(activity, 14, "left", title=activity),
        s.fixed(size, 11.5),
        s.fixed(s.speed_text(status.speed), 7.5),
        s.fixed(f"ETA {eta}", 6.5),
    ]
    return s.block(
        "".join(cells),
        f"{s.MUTED};{s.SMALL};display:flex;flex-wrap:wrap;gap:0 12px",
    )
