"""A small table that renders as HTML in a notebook and as aligned text in a terminal."""

from __future__ import annotations

import html
from collections.abc import Sequence


class Table:
    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = ""):
        self.headers = list(headers)
        self.rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
        self.title = title

    def __repr__(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.headers, *self.rows]) for i in range(len(self.headers))
        ]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

        lines = [self.title] if self.title else []
        lines += [line(self.headers), "  ".join("-" * w for w in widths)]
        lines += [line(row) for row in self.rows]
        if not self.rows:
            lines.append("(none)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>"
            + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row)
            + "</tr>"
            for row in self.rows
        )
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        empty = "" if self.rows else f"<tr><td colspan={len(self.headers)}>(none)</td></tr>"
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}{empty}</tbody></table>"
