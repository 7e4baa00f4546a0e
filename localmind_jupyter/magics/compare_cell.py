"""``%%localmind MODEL_A MODEL_B [...]``: the same prompt to several models, side by side.

Front end only: the core's ``run_compare`` asks every model at once and reports pieces as
events; this module fills the prompt once, builds each model's options (its own chat
history), and shows the events: in a kernel one display redrawn as columns (throttled like
the single answer), in a terminal the answers one after another, each under a header.
Then a one-row-per-model table, and ``-o VAR`` gets ``{spec: text or parsed object}``.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from .. import safe_display
from ..errors import LocalMindError
from ..secrets import redact
from .compare_view import (
    SUMMARY_HEADERS,
    Column,
    apply_event,
    columns_html,
    columns_text,
    stats_line,
    summary_rows,
)
from .image_view import images_metadata, show_images
from .prompt_images import cell_prompt
from .render import finalize
from .request_options import FlagError, sampling_options, structured_options
from .tables import Table
from .thinking import stats_of

if TYPE_CHECKING:
    from argparse import Namespace

    from ..backends._response import ModelResponse
    from ..core.compare import CompareEvent, CompareTarget
    from .magic import LocalMind

__all__ = ["run_compare_cell"]


def run_compare_cell(magic: LocalMind, args: Namespace, cell: str, specs: list[str]) -> None:
    """Check, ask every model at once, show the columns, then the table."""
    from ..core.compare import check_options, check_specs, resolve_targets, run_compare

    shell = magic.shell
    assert shell is not None
    session = magic.session
    fmt = args.format or magic.default_format
    try:
        check_specs(specs)
        if args.no_stream:
            raise FlagError("--no-stream cannot be used when comparing models: columns stream")
        asked = cell_prompt(magic, args, cell)
        if asked is None:
            return
        prompt, images = asked
        targets = resolve_targets(specs, lambda s: session.resolve(s, magic.default_model))
        shared = sampling_options(args)
        if images:
            shared["images"] = images  # the same images to every model
        for target in targets:
            if target.backend is None:
                continue
            capabilities = target.backend.model_capabilities(target.model)
            target.options = structured_options(args, shell.user_ns, fmt, capabilities)
        if args.schema is not None:
            fmt = "json"
        check_options(prompt, targets, shared)
    except (FlagError, LocalMindError) as exc:
        magic._say(str(exc), error=True)
        return
    conversations = _histories(magic, args, targets)

    show_images(images, notebook=magic._in_kernel())
    columns = [Column(t.backend_name, t.model) for t in targets]
    remote_images = session.loader.config.display.remote_images
    view: _NotebookColumns | _TerminalColumns
    if magic._in_kernel():
        view = _NotebookColumns(columns, fmt, magic.max_update_rate, remote_images)
    else:
        view = _TerminalColumns(columns)
    answers = run_compare(prompt, targets, shared, on_event=view.on_event)
    stopped = any(a.finish_reason == "cancelled" for a in answers)
    metadata = {
        "compare": True,
        "format": fmt,
        "models": [_model_metadata(t, a, shared) for t, a in zip(targets, answers, strict=True)],
        "stopped": stopped,
    }
    if images:
        metadata["images"] = images_metadata(images)
    view.finish(metadata)
    show_stats = magic.show_stats if args.stats is None else args.stats
    if show_stats:
        view.table(Table(SUMMARY_HEADERS, summary_rows(columns)))
    if stopped:
        magic._say("stopped — the partial answers are kept above")
    if args.output:
        shell.user_ns[args.output] = {
            spec: _value(a, fmt, args.schema is not None)
            for spec, a in zip(specs, answers, strict=True)
        }
    shell.user_ns["_localmind"] = answers
    for conversation, answer in zip(conversations, answers, strict=True):
        ended = answer.finish_reason not in ("error", "cancelled")
        if conversation is not None and ended and answer.text:
            conversation.add(prompt, answer.text, images=images)


def _histories(magic: LocalMind, args: Namespace, targets: list[CompareTarget]) -> list[Any]:
    """Each model's own conversation, its earlier turns added to that model's request."""
    conversations: list[Any] = []
    for target in targets:
        if args.no_history or target.backend is None or target.error is not None:
            conversations.append(None)
            continue
        conversation = magic.session.compare_history_for(
            target.backend.name, target.model, magic.max_history
        )
        if conversation.messages:
            target.options["messages"] = list(conversation.messages)
        conversations.append(conversation)
    return conversations


def _model_metadata(
    target: CompareTarget, answer: ModelResponse, shared: dict[str, Any]
) -> dict[str, Any]:
    from .magic import _parameters

    data = {
        "spec": target.spec,
        "backend": answer.backend,
        "model": answer.model,
        "parameters": _parameters({**shared, **target.options}),
        "history_turns": len(target.options.get("messages", ())) // 2,
        "stats": stats_of(answer),
        "stopped": answer.finish_reason == "cancelled",
        "error": redact(answer.error) if answer.error else None,
    }
    if answer.replayed:
        data["replayed"] = True
    return data


def _value(answer: ModelResponse, fmt: str, schema: bool) -> Any:
    """What ``-o`` keeps for one model: the parsed object with ``--schema``, else the text."""
    if schema:
        return answer.parsed
    if fmt in ("json", "code") and answer.finish_reason != "error":
        return finalize(answer.text, fmt).value
    return answer.text


class _NotebookColumns:
    """One display redrawn as the pieces arrive, at most ``max_rate`` times a second (and
    rarer when drawing takes long); every column's end is drawn at once."""

    def __init__(
        self, columns: list[Column], fmt: str, max_rate: float, remote_images: bool
    ) -> None:
        from IPython.display import display

        self.columns = columns
        self.fmt = fmt
        self.remote_images = remote_images
        self.min_interval = 1.0 / max_rate
        self.updates = 0
        self._next = 0.0
        self._handle = display(self._bundle(), raw=True, display_id=True)

    def _bundle(self) -> dict[str, str]:
        html = columns_html(self.columns, self.fmt, remote_images=self.remote_images)
        return {"text/plain": columns_text(self.columns), "text/html": html}

    def on_event(self, event: CompareEvent) -> None:
        apply_event(self.columns, event)
        now = time.monotonic()
        if event.kind in ("text", "thinking") and now < self._next:
            return
        self.updates += 1
        self._handle.update(self._bundle(), raw=True)
        took = time.monotonic() - now
        self._next = now + max(self.min_interval, 4 * took)

    def finish(self, metadata: dict[str, Any]) -> None:
        self._handle.update(self._bundle(), raw=True, metadata={"localmind": metadata})

    def table(self, table: Table) -> None:
        from IPython.display import display

        display({"text/plain": repr(table), "text/html": table._repr_html_()}, raw=True)


class _TerminalColumns:
    """The answers one after another: the first column streams live, the others are held
    until the one before them ends (then printed, and streamed on)."""

    def __init__(self, columns: list[Column], out: TextIO | None = None) -> None:
        self.columns = columns
        self.out = out or sys.stdout
        self.current = -1
        self._advance()

    def _write(self, text: str) -> None:
        self.out.write(safe_display.terminal_text(text))
        self.out.flush()

    def _advance(self) -> None:
        """Close the current column, start the next; print what it already has."""
        while self.current + 1 < len(self.columns):
            self.current += 1
            column = self.columns[self.current]
            self._write(f"── {column.label} ──\n")
            if column.trace:
                self._write(f"[thinking]\n{''.join(column.trace)}\n[/thinking]\n")
            self._write("".join(column.pieces))
            if column.response is None:
                return
            self._end(column)

    def _end(self, column: Column) -> None:
        shown = "".join(column.pieces)
        text = column.text
        tail = text[len(shown) :] if text.startswith(shown) else ""
        self._write(tail + "\n")
        if column.error:
            self._write(f"⚠ {column.error}\n")
        stats = stats_line(column.response) if column.response is not None else ""
        if stats:
            self._write(f"[{stats}]\n")
        self._write("\n")

    def on_event(self, event: CompareEvent) -> None:
        apply_event(self.columns, event)
        if event.column != self.current:
            return
        column = self.columns[event.column]
        if event.kind == "text":
            self._write(event.text)
        elif event.kind == "thinking":
            pass  # shown whole with the answer's end, kept apart from the answer
        else:
            if column.trace:
                self._write(f"\n[thinking]\n{''.join(column.trace)}\n[/thinking]")
            self._end(column)
            self._advance()

    def finish(self, metadata: dict[str, Any]) -> None:
        """Nothing left: every column has ended (and was printed) when run_compare returns."""

    def table(self, table: Table) -> None:
        self._write(repr(table) + "\n")
