"""A batch's progress as one line on stderr, for a terminal or a script (no widgets there).

Redrawn in place with ``\\r`` at most five times a second, ended with a newline. Counts
only: model output never reaches the line.
"""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from .core._batch_result import BatchProgress, BatchResult

#: Seconds between two redraws of the line.
MIN_INTERVAL = 0.2
_WIDTH = 20


def interrupted_note(result: BatchResult) -> str:
    """One line: what was kept, and that running the same batch again sends only the rest."""
    counts = result.counts
    kept = counts["ok"] + counts["error"]
    head = f"batch interrupted: {kept} of {len(result)} rows kept, {counts['cancelled']} not run"
    if not result.resumable:
        return f"{head}; the answer log is off (log: false), so running it again sends every row"
    return (
        f"{head}; run the same batch() again to send only the rest (resume=True answers the "
        "finished rows from the answer log)"
    )


class TextBar:
    """``label [#####.....] 12/64 rows · 3.1 rows/s · ETA 17 s`` on one line."""

    def __init__(self, total: int, label: str, stream: IO[str] | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self._last = 0.0
        self._width = 0

    def update(self, progress: BatchProgress) -> None:
        now = time.monotonic()
        if not progress.finished and now - self._last < MIN_INTERVAL:
            return
        self._last = now
        filled = _WIDTH * progress.done // max(1, progress.total)
        bar = "#" * filled + "." * (_WIDTH - filled)
        line = f"{self.label} [{bar}] {progress.line()}"
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        end = "\n" if progress.finished else ""
        self.stream.write(f"\r{line}{pad}{end}")
        self.stream.flush()

    def close(self, result: BatchResult) -> None:
        if result.cancelled:
            self.stream.write(interrupted_note(result) + "\n")
            self.stream.flush()
