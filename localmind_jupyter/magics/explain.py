"""``%localmind explain [N]``: the current model explains the error of a failed cell.

Front end only. When a cell fails, :func:`record_failed_cell` (called from the magic's
``post_run_cell`` hook) keeps its code and its error, formatted at once by the core
(``core/explain.py``), so no frame or local variable stays alive; the session keeps the
newest ``MAX_FAILED_CELLS``. ``explain`` builds the bounded, redacted prompt and sends it
the way a ``%%localmind`` cell is sent (the same model choice, streaming, sanitizing,
footer and failures), logged in the answer log with source ``explain``. The chat history
keeps the exchange under a short label (``explain: cell 5 ZeroDivisionError``) instead
of the whole prompt, so the next cells' prompts do not carry the traceback along.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..core.answer_log import answer_source
from ..core.explain import build_prompt, capture_cell
from ..session import MAX_FAILED_CELLS
from .commands import _CommandUsage, _parse, _Parser, _parser

if TYPE_CHECKING:
    from IPython.core.interactiveshell import ExecutionResult

    from ..core.explain import FailedCell
    from .magic import LocalMind

__all__ = ["record_failed_cell", "run_explain"]

#: How many failed cells a message names, newest last.
_NAMED = 10


def record_failed_cell(magic: LocalMind, result: ExecutionResult) -> None:
    """Keep the cell that just failed (its error formatted now) for ``explain``."""
    error = result.error_in_exec or result.error_before_exec
    count = result.execution_count
    if error is None or count is None:
        return
    info = getattr(result, "info", None)
    source = getattr(info, "raw_cell", None) or ""
    names = getattr(getattr(magic.shell, "compile", None), "_filename_map", None)
    try:
        cell = capture_cell(count, source, error, names if isinstance(names, Mapping) else None)
    except Exception:  # noqa: BLE001 - a hook must never break the learner's kernel
        return
    magic.session.record_failed_cell(cell)


def run_explain(magic: LocalMind, args: list[str]) -> None:
    """``%localmind explain [N] [options]``: send cell N's (or the last) error to the model."""
    opts = _parse(_explain_parser(), args)
    cell = _chosen_cell(magic, opts.cell)
    prompt = build_prompt(cell)
    if opts.prompt:
        print(prompt)
        return
    with answer_source("explain"):  # how the answer log tells explanations apart
        magic._ask(shlex.join(_ask_options(opts)), prompt)
    if not opts.no_history:
        _relabel_last_turn(magic, prompt, cell.label)


def _explain_parser() -> _Parser:
    parser = _parser("explain")
    parser.add_argument("cell", nargs="?", type=_cell_number, metavar="N")
    parser.add_argument("-m", "--model")
    parser.add_argument("-s", "--system")
    parser.add_argument("-t", "--temperature", type=float)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-history", action="store_true")
    parser.add_argument("--no-stream", action="store_true")
    parser.add_argument("--no-stats", action="store_true")
    parser.add_argument("--prompt", action="store_true")
    return parser


def _cell_number(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a cell number (the N of In [N], e.g. explain 5), got {text!r}"
        )
    return value


def _ask_options(opts: argparse.Namespace) -> list[str]:
    """The options for the magic's own request path; the prompt is sent as written."""
    words = ["--no-interpolate"]
    for flag, value in (
        ("-m", opts.model),
        ("-s", opts.system),
        ("-t", opts.temperature),
        ("--max-tokens", opts.max_tokens),
        ("--seed", opts.seed),
    ):
        if value is not None:
            words += [flag, str(value)]
    for flag, on in (
        ("--no-history", opts.no_history),
        ("--no-stream", opts.no_stream),
        ("--no-stats", opts.no_stats),
    ):
        if on:
            words.append(flag)
    return words


def _chosen_cell(magic: LocalMind, number: int | None) -> FailedCell:
    """Cell ``number``, or the newest failed cell; else the message saying what failed."""
    failed = magic.session.failed_cells
    if number is None:
        if not failed:
            raise _CommandUsage(
                "no cell has failed yet in this kernel: when a cell raises an error, "
                "%localmind explain asks the model what it means (explain N for cell N)"
            )
        return failed[next(reversed(failed))]
    if number in failed:
        return failed[number]
    shell = magic.shell
    current = getattr(shell, "execution_count", None)
    if isinstance(current, int) and number > current:
        problem = f"cell {number} has not run yet"
    elif number in magic.session.cell_errors:
        problem = (
            f"cell {number}'s error is no longer kept (explain keeps the last "
            f"{MAX_FAILED_CELLS} failed cells); run the cell again to explain it"
        )
    else:
        problem = f"cell {number} did not fail"
    if not failed:
        raise _CommandUsage(f"{problem}, and no cell has failed yet in this kernel")
    numbers = list(failed)[-_NAMED:]
    listed = ", ".join(str(n) for n in numbers)
    raise _CommandUsage(
        f"{problem}; cells that failed: {listed} (e.g. %localmind explain {numbers[-1]})"
    )


def _relabel_last_turn(magic: LocalMind, prompt: str, label: str) -> None:
    """The history keeps the exchange under ``label``, not the whole prompt."""
    conversation = magic.session.conversation
    if conversation is None or len(conversation.messages) < 2:
        return
    turn = conversation.messages[-2]
    if turn.get("role") == "user" and turn.get("content") == prompt:
        conversation.messages[-2] = {"role": "user", "content": label}
