"""A failed cell's error as a short, bounded prompt: "explain this error to a learner".

Front-end free. :func:`capture` (``_error_capture.py``) runs when the cell fails: it formats
the traceback at once into plain values, so no frame and none of its local variables stay
alive after the cell. :func:`build_prompt` runs when ``explain`` is asked:

- frames are trimmed to the learner's code: the cells, and files outside site-packages and
  the standard library; each run of library frames is one line (``... 12 frames in pandas``,
  with where the error was raised when a library raised it); the machinery that ran the
  cell (IPython's own frames before the first cell frame) is dropped; a recursion's repeated
  frame is one frame and a count;
- long values are cut: the message, each source line, the cell's code (a window around the
  failing line), chained exceptions (``raise ... from``, and errors during handling), and
  the whole prompt (:data:`PROMPT_CHARS`), shrinking the least useful parts first;
- secrets are masked: :func:`~localmind_jupyter.secrets.redact` (every key LocalMind knows,
  secret-named environment variables, URL passwords) and :func:`mask_code_secrets` (string
  literals given to secret-named names, and the shapes of common API keys), before anything
  is cut, so a cut never leaves part of a key behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..secrets import MASK, is_secret_key, redact
from ._error_capture import CapturedError, FailedCell, Frame, capture, capture_cell

__all__ = [
    "INSTRUCTION",
    "PROMPT_CHARS",
    "CapturedError",
    "FailedCell",
    "Frame",
    "build_prompt",
    "capture",
    "capture_cell",
    "mask_code_secrets",
]

#: What the model is asked to do; the first line of every prompt.
INSTRUCTION = (
    "Explain this error to a learner: what it means, the likely cause in their code, "
    "and a fix. Be brief and concrete."
)
#: The whole prompt, at most: about 1,000 tokens of code and text (1,800 when it is mostly
#: digits), so a small model's context (GGUF's n_ctx is 2048) keeps room for the answer.
PROMPT_CHARS = 3000
#: One exception message, one source line, and the cell's code, at most, in the prompt.
MESSAGE_CHARS = 400
LINE_CHARS = 160
SOURCE_CHARS = 1200
SOURCE_LINES = 40


# --- secrets in code ----------------------------------------------------------------------------
#: ``api_key = "..."``, ``"token": '...'``, ``os.environ["OPENAI_API_KEY"] = "..."``.
_ASSIGNED = re.compile(
    r"(?P<name>[A-Za-z_][\w-]*)['\"]?\]?\s*(?:==|[:=])\s*[rbuRBU]?"
    r"(?P<quote>['\"])(?P<value>[^'\"\n]{4,}?)(?P=quote)"
)
#: The shapes of common keys, masked wherever they appear.
_KEY_SHAPES = re.compile(
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35})"
)


def mask_code_secrets(text: str) -> str:
    """Code with the string values of secret-named names and key-shaped text masked."""

    def assigned(match: re.Match[str]) -> str:
        if not is_secret_key(match.group("name")):
            return match.group(0)
        start, end = match.span("value")
        whole = match.group(0)
        offset = match.start()
        return whole[: start - offset] + MASK + whole[end - offset :]

    return _KEY_SHAPES.sub(MASK, _ASSIGNED.sub(assigned, text))


def _clean(text: str) -> str:
    return redact(mask_code_secrets(text))


def _cut(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … [{len(text) - limit} more characters]"


# --- the prompt ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Budget:
    source_lines: int
    frame_groups: int | None  # rendered frame groups of the failing exception; None: all
    earlier_frames: bool  # chained exceptions with their frames, or their last line only


_BUDGETS = (
    _Budget(SOURCE_LINES, None, True),
    _Budget(SOURCE_LINES, None, False),
    _Budget(12, None, False),
    _Budget(12, 8, False),
    _Budget(6, 4, False),
)


def build_prompt(cell: FailedCell, limit: int = PROMPT_CHARS) -> str:
    """The prompt for ``cell``: the instruction, its code, its trimmed traceback; at most
    ``limit`` characters, every secret masked."""
    text = ""
    for budget in _BUDGETS:
        text = _clean(_assemble(cell, budget))
        if len(text) <= limit:
            return text
    marker = " … [cut]"
    return text[: max(0, limit - len(marker))] + marker


def _assemble(cell: FailedCell, budget: _Budget) -> str:
    n, error = cell.execution_count, cell.error
    source = _source_block(cell.source, _focus_line(cell), budget.source_lines)
    traceback_text = _traceback_text(error, budget)
    return (
        f"{INSTRUCTION}\n\n"
        f"Cell {n} of a Jupyter notebook failed with {error.short_name}.\n\n"
        f"The code of cell {n}:\n{_fenced(source, 'python')}\n\n"
        "The traceback, trimmed to the learner's code (library frames collapsed):\n"
        f"{_fenced(traceback_text, 'text')}"
    )


def _focus_line(cell: FailedCell) -> int | None:
    """The failing line of the cell itself: where to centre a long cell's window."""
    here = f"Cell In[{cell.execution_count}]"
    if cell.error.syntax is not None and cell.error.syntax[0] in {here, "a cell"}:
        return cell.error.syntax[1]
    lines = [f.lineno for f in cell.error.frames if f.kind == "cell" and f.where == here]
    return lines[-1] if lines else None


def _source_block(source: str, focus: int | None, max_lines: int) -> str:
    lines = [_cut(_clean(line.rstrip()), LINE_CHARS) for line in source.strip("\n").splitlines()]
    if not lines:
        return "(the cell's code is not available)"
    if len(lines) > max_lines:
        centre = (focus or 1) - 1
        start = max(0, min(centre - max_lines // 2, len(lines) - max_lines))
        end = start + max_lines
        shown = lines[start:end]
        if start:
            shown.insert(0, f"# ... {start} lines above ...")
        if end < len(lines):
            shown.append(f"# ... {len(lines) - end} lines below ...")
        lines = shown
    return _cut("\n".join(lines), SOURCE_CHARS)


def _fenced(text: str, language: str) -> str:
    """A Markdown code block whose fence no backtick run inside can close."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _traceback_text(error: CapturedError, budget: _Budget) -> str:
    chain: list[tuple[CapturedError, bool]] = []  # oldest first, each with "show frames"
    current: CapturedError | None = error
    while current is not None:
        chain.insert(0, (current, current is error or budget.earlier_frames))
        current = current.earlier
    blocks: list[str] = []
    if _chain_omitted(error):
        blocks.append("(earlier exceptions of this chain left out)")
    for index, (exc, with_frames) in enumerate(chain):
        groups = budget.frame_groups if exc is error else 4
        blocks.append(_one_traceback(exc, with_frames, groups))
        if index < len(chain) - 1:
            after = chain[index + 1][0]
            blocks.append(
                "The above exception was the direct cause of the following exception:"
                if after.link == "cause"
                else "During handling of the above exception, another exception occurred:"
            )
    return "\n\n".join(blocks)


def _chain_omitted(error: CapturedError) -> bool:
    """Whether the chain of ``error`` went on past what was kept."""
    current: CapturedError | None = error
    while current is not None:
        if current.earlier_omitted:
            return True
        current = current.earlier
    return False


def _one_traceback(error: CapturedError, with_frames: bool, groups: int | None) -> str:
    lines: list[str] = []
    if with_frames and error.frames:
        lines.append("Traceback (most recent call last):")
        lines.extend(_frame_lines(error.frames, groups))
    if error.syntax is not None:
        where, lineno, text, offset = error.syntax
        lines.append(f"  {where}, line {lineno}")
        if text.strip():
            shown = _cut(_clean(text.strip()), LINE_CHARS)
            lines.append(f"    {shown}")
            indent = len(text) - len(text.lstrip())
            column = offset - 1 - indent
            if 0 <= column < min(len(shown), LINE_CHARS):
                lines.append("    " + " " * column + "^")
    message = _clean(error.message)
    more = max(0, error.message_length - len(error.message)) + max(0, len(message) - MESSAGE_CHARS)
    if more:
        message = f"{message[:MESSAGE_CHARS]} … [{more} more characters]"
    lines.append(f"{error.type_name}: {message}" if message else error.type_name)
    return "\n".join(lines)


def _frame_lines(frames: tuple[Frame, ...], groups: int | None) -> list[str]:
    runs: list[list[Frame]] = []
    for frame in frames:
        if runs and frame.kind == "library" and runs[-1][0].kind == "library":
            runs[-1].append(frame)
        else:
            runs.append([frame])
    rendered = [_run_lines(run, last=index == len(runs) - 1) for index, run in enumerate(runs)]
    if groups is not None and len(rendered) > groups:
        dropped = sum(f.repeat for run in runs[1 : len(runs) - groups + 1] for f in run)
        gap = [f"  ... {dropped} more frames left out ..."]
        rendered = [rendered[0], gap, *rendered[len(rendered) - groups + 1 :]]
    return [line for block in rendered for line in block]


def _run_lines(run: list[Frame], *, last: bool) -> list[str]:
    first = run[0]
    if first.kind == "gap":
        return [f"  ... {first.repeat} frames left out ..."]
    if first.kind == "library":
        count = sum(f.repeat for f in run)
        packages = ", ".join(dict.fromkeys(f.where for f in run))
        text = f"  ... {count} frame{'s' if count != 1 else ''} in {packages}"
        if last:  # the library raised it: where, so the message makes sense
            end = run[-1]
            text += f" (raised in {end.path}, line {end.lineno}, in {end.name})"
        return [f"{text} ..."]
    head = (
        f"  {first.where}, line {first.lineno}, in {first.name}"
        if first.kind == "cell"
        else f'  File "{first.where}", line {first.lineno}, in {first.name}'
    )
    lines = [head]
    if first.line:
        lines.append(f"    {_cut(_clean(first.line), LINE_CHARS)}")
    if first.repeat > 1:
        lines.append(f"  [the frame above repeated {first.repeat - 1} more times]")
    return lines
