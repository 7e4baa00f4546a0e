"""A failed cell's error, formatted the moment the cell fails, as plain values.

:func:`capture` walks the traceback once and keeps only text and numbers (file, line,
function, the source line of the learner's own frames), so no frame, and none of the
local variables a frame holds, stays alive after the cell; long messages, lines and
sources are cut to a size worth keeping, and a recursion's repeated frame is one frame
and a count. Each frame is told apart as a cell, the learner's file, or library code
(site-packages, the standard library, a compiled extension), for the prompt to trim.
"""

from __future__ import annotations

import functools
import os
import re
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal

#: Exceptions of one chain kept (the failing one and those it was raised from or during).
MAX_CHAIN = 3
#: Frames kept per exception when the cell fails: the first and the last ones.
KEEP_FIRST, KEEP_LAST = 10, 30
#: What capture keeps of a message, a line and the source (memory; the prompt cuts more).
_KEEP_MESSAGE, _KEEP_LINE, _KEEP_SOURCE = 4000, 1000, 20_000

FrameKind = Literal["cell", "user", "library", "gap"]
_IPYTHON_CELL = re.compile(r"^<ipython-input-(\d+)-[0-9a-f]+>$")
_IPYKERNEL_CELL = re.compile(r"ipykernel_\d+[/\\]\d+\.py$")


@dataclass(frozen=True)
class Frame:
    """One frame, or a run of identical ones (``repeat``), or a ``gap`` of dropped frames."""

    kind: FrameKind
    where: str  # "Cell In[5]", "~/lesson/util.py", a package name ("pandas"), "" for a gap
    path: str  # a library frame's file inside its package ("pandas/core/frame.py")
    lineno: int
    name: str
    line: str  # the source line of a cell or user frame, stripped
    repeat: int = 1  # identical consecutive frames (recursion); a gap: the frames dropped


@dataclass(frozen=True)
class CapturedError:
    """An exception as plain text; ``earlier`` is the one it was raised from or during."""

    type_name: str  # as Python's traceback writes it: "json.decoder.JSONDecodeError"
    short_name: str  # "JSONDecodeError"
    message: str
    frames: tuple[Frame, ...]
    #: A SyntaxError's place: (where, line number, the line, caret column or 0).
    syntax: tuple[str, int, str, int] | None = None
    earlier: CapturedError | None = None
    link: Literal["cause", "context"] | None = None  # how ``earlier`` led to this one
    earlier_omitted: bool = False  # the chain went on past MAX_CHAIN
    message_length: int = 0  # the whole message's length, when ``message`` was cut


@dataclass(frozen=True)
class FailedCell:
    """What ``explain`` needs of a failed cell: its number, its code and its error."""

    execution_count: int
    source: str
    error: CapturedError

    @property
    def label(self) -> str:
        """How the exchange reads in the chat history: ``explain: cell 5 ZeroDivisionError``."""
        return f"explain: cell {self.execution_count} {self.error.short_name}"


# --- capture: when the cell fails ---------------------------------------------------------------
def capture_cell(
    execution_count: int,
    source: str,
    error: BaseException,
    cell_names: Mapping[str, int] | None = None,
) -> FailedCell:
    """The failed cell, its error formatted now. ``cell_names``: cell file name -> number."""
    return FailedCell(execution_count, _keep(source, _KEEP_SOURCE), capture(error, cell_names))


def capture(error: BaseException, cell_names: Mapping[str, int] | None = None) -> CapturedError:
    """``error`` and the exceptions it was raised from, as plain values (no frames kept)."""
    return _capture(error, cell_names or {}, {id(error)}, 1)


def _capture(
    error: BaseException, names: Mapping[str, int], seen: set[int], depth: int
) -> CapturedError:
    kind = type(error)
    module = getattr(kind, "__module__", "") or ""
    short = getattr(kind, "__qualname__", kind.__name__)
    type_name = short if module in {"builtins", "__main__"} else f"{module}.{short}"
    syntax = None
    if isinstance(error, SyntaxError):
        message = str(error.msg or "")
        where = _place(str(error.filename or ""), names)[1]
        line = (error.text or "").rstrip("\n")
        syntax = (where, error.lineno or 0, _keep(line, _KEEP_LINE), error.offset or 0)
    else:
        message = _message(error)
    # A cell that did not compile: only IPython's compile machinery ran, no frame is theirs.
    uncompiled = syntax is not None and syntax[0].startswith(("Cell In[", "a cell"))
    frames = () if uncompiled else _frames(error.__traceback__, names)
    earlier: BaseException | None = error.__cause__
    link: Literal["cause", "context"] | None = "cause"
    if earlier is None and not error.__suppress_context__:
        earlier, link = error.__context__, "context"
    if earlier is None or id(earlier) in seen:
        earlier, link = None, None
    captured_earlier, omitted = None, False
    if earlier is not None:
        if depth < MAX_CHAIN:
            seen.add(id(earlier))
            captured_earlier = _capture(earlier, names, seen, depth + 1)
        else:
            omitted, link = True, None
    return CapturedError(
        type_name,
        kind.__name__,
        _keep(message, _KEEP_MESSAGE),
        frames,
        syntax,
        captured_earlier,
        link,
        omitted,
        len(message),
    )


def _message(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the hook
        return f"<exception str() failed: {type(error).__name__}>"
    notes = getattr(error, "__notes__", None)  # add_note() (Python 3.11)
    if isinstance(notes, list):
        text = "\n".join([text, *(str(n) for n in notes[:3])])
    return text


def _frames(tb: TracebackType | None, names: Mapping[str, int]) -> tuple[Frame, ...]:
    import linecache

    frames: list[Frame] = []
    while tb is not None:
        code, lineno = tb.tb_frame.f_code, tb.tb_lineno
        kind, where, path = _place(code.co_filename, names)
        line = ""
        if kind != "library":
            line = _keep(linecache.getline(code.co_filename, lineno).strip(), _KEEP_LINE)
        frame = Frame(kind, where, path, lineno, code.co_name, line)
        last = frames[-1] if frames else None
        if last is not None and replace(last, repeat=1) == frame:
            frames[-1] = replace(last, repeat=last.repeat + 1)
        else:
            frames.append(frame)
        tb = tb.tb_next
    ours = [i for i, f in enumerate(frames) if f.kind != "library"]
    cells = [i for i, f in enumerate(frames) if f.kind == "cell"]
    first = cells[0] if cells else (ours[0] if ours else 0)
    frames = frames[first:]  # what ran the cell (IPython's run_code) is not the learner's
    if len(frames) > KEEP_FIRST + KEEP_LAST:
        dropped = len(frames) - KEEP_FIRST - KEEP_LAST
        gap = Frame("gap", "", "", 0, "", "", dropped)
        frames = [*frames[:KEEP_FIRST], gap, *frames[-KEEP_LAST:]]
    return tuple(frames)


def _place(filename: str, names: Mapping[str, int]) -> tuple[FrameKind, str, str]:
    """(kind, where, path inside its package) of a code file name."""
    number = names.get(filename)
    match = _IPYTHON_CELL.match(filename)
    if number is None and match:
        number = int(match.group(1))
    if number is not None:
        return "cell", f"Cell In[{number}]", ""
    if _IPYKERNEL_CELL.search(filename):
        return "cell", "a cell", ""
    if filename.startswith("<frozen "):
        package = filename[len("<frozen ") :].rstrip(">").split(".")[0]
        return "library", package, filename
    if filename.startswith("<"):
        return "user", filename, ""
    if filename.endswith((".pyx", ".pxi", ".pxd")):  # a compiled extension's source
        source = filename.replace("\\", "/")
        return "library", _package(source), source
    inside = _library_path(filename)
    if inside is not None:
        return "library", _package(inside), inside
    return "user", _home_short(filename), ""


def _library_path(filename: str) -> str | None:
    """The file's path inside site-packages or the standard library; None for user code."""
    parts = re.split(r"[/\\]", filename)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            return "/".join(parts[index + 1 :])
    absolute = os.path.abspath(filename)
    for root in _stdlib_roots():
        if absolute.startswith(root + os.sep):
            return absolute[len(root) + 1 :].replace(os.sep, "/")
    return None


@functools.cache
def _stdlib_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {os.path.abspath(paths[key]) for key in ("stdlib", "platstdlib") if key in paths}
    return tuple(sorted(roots, key=len, reverse=True))


def _package(inside: str) -> str:
    head = next((part for part in inside.split("/") if part), inside)
    return head[:-3] if head.endswith(".py") else head


def _home_short(filename: str) -> str:
    """A user file's path with the home folder as ``~`` (no user name in the prompt)."""
    home = os.path.expanduser("~")
    if home not in {"", "~", os.sep} and filename.startswith(home + os.sep):
        return "~" + filename[len(home) :]
    return filename


def _keep(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]
