"""The recording file of replay: JSON Lines, a versioned header line, then one answer a line.

::

    {"localmind_replay": 1, "created": "2026-12-01T19:00:00+00:00", "localmind_version": "0.1.0"}
    {"key": "…sha256…", "backend": "ollama", "model": "qwen2.5:7b", "prompt": "…", …}

Each answer line holds what the answer log keeps of it (the same redaction: no key, no URL
password, images by their metadata only). A damaged line is skipped with a warning naming
its number; the rest still plays. A header of a newer format is refused, not guessed at.
"""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import LocalMindError

#: The format this version writes and reads; a newer header is refused.
FORMAT_VERSION = 1
HEADER_KEY = "localmind_replay"
#: The fields every answer line has (more are kept as they are).
REQUIRED = ("key", "backend", "model", "prompt", "answer")


class ReplayError(LocalMindError):
    """Replay cannot go on as asked (no recording, a newer format, an unwritable file)."""


class ReplayWarning(UserWarning):
    """Something in a recording was skipped, or an answer could not be recorded."""


@dataclass
class Recording:
    """A recording as read: the newest answer per request key, in file order."""

    path: Path
    version: int = FORMAT_VERSION
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``(line number, why)`` of each line skipped.
    skipped: list[tuple[int, str]] = field(default_factory=list)
    #: ``(mtime_ns, size)`` when read: a changed file is read again.
    stamp: tuple[int, int] = (0, 0)


def header() -> dict[str, Any]:
    from .. import __version__

    return {
        HEADER_KEY: FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "localmind_version": __version__,
    }


def shown(path: Path) -> str:
    """The path as messages show it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def stamp_of(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size


def read_recording(path: Path) -> Recording:
    """Read ``path``; ``ReplayError`` if it is missing, has no header or a newer one."""
    try:
        stamp = stamp_of(path)
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise ReplayError(
            f"no replay recording at {shown(path)}; record one first: `%localmind replay record`, "
            "run the cells, then `%localmind replay play` (or name the file: "
            "`%localmind replay play PATH`)"
        ) from None
    except OSError as exc:
        raise ReplayError(f"cannot read the replay recording {shown(path)}: {exc}") from None
    recording = Recording(path, stamp=stamp)
    if not lines:
        return recording
    recording.version = _check_header(path, lines[0])
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        why = _add(recording, line)
        if why:
            recording.skipped.append((number, why))
            warnings.warn(
                f"replay: skipped line {number} of {shown(path)}: {why}; "
                "the other answers still play",
                ReplayWarning,
                stacklevel=2,
            )
    return recording


def _check_header(path: Path, line: str) -> int:
    try:
        first = json.loads(line)
    except ValueError:
        first = None
    if not isinstance(first, dict) or HEADER_KEY not in first:
        raise ReplayError(
            f"{shown(path)} is no replay recording: its first line is not a "
            f'{{"{HEADER_KEY}": {FORMAT_VERSION}, …}} header'
        )
    version = first[HEADER_KEY]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ReplayError(
            f"{shown(path)}: the replay header's version {version!r:.20} is not valid"
        )
    if version > FORMAT_VERSION:
        raise ReplayError(
            f"{shown(path)} was recorded in replay format {version}, newer than this LocalMind "
            f"reads (format {FORMAT_VERSION}); upgrade localmind-jupyter to play it"
        )
    return version


def _add(recording: Recording, line: str) -> str | None:
    """Keep one answer line; the reason it was skipped, else None."""
    try:
        answer = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg})"
    except ValueError:
        return "not JSON"
    if not isinstance(answer, dict):
        return "not a JSON object"
    missing = [name for name in REQUIRED if not isinstance(answer.get(name), str)]
    if missing:
        return f"no {', '.join(missing)}"
    recording.answers[answer["key"]] = answer
    return None


_WRITE_LOCK = threading.Lock()


def append_answer(path: Path, answer: dict[str, Any]) -> None:
    """Add one answer line (the header first, into a new or empty file); ``OSError`` as is."""
    line = json.dumps(answer, ensure_ascii=False, separators=(",", ":"), default=str)
    with _WRITE_LOCK:
        new = not path.exists() or path.stat().st_size == 0
        with path.open("a", encoding="utf-8") as out:
            if new:
                out.write(json.dumps(header(), separators=(",", ":")) + "\n")
            out.write(line + "\n")


def check_writable(path: Path) -> None:
    """``ReplayError`` now, rather than a lost answer later, when ``path`` cannot be written."""
    try:
        if path.exists():
            if not path.is_file():
                raise OSError("it is not a file")
            with path.open("a", encoding="utf-8"):
                pass
            return
        folder = path.parent
        if not folder.is_dir():
            raise OSError(f"the folder {folder} does not exist")
        probe = folder / f".{path.name}.probe"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ReplayError(
            f"cannot record into {shown(path)}: {getattr(exc, 'strerror', None) or exc}; "
            "name a writable file: `%localmind replay record PATH` (or set LOCALMIND_REPLAY_FILE)"
        ) from None
