"""``%%localmind --over DF --into COLUMN``: the cell body is a template, each row one prompt.

Front end only: the rows go to the core's batch runner (``localmind_jupyter.batch``), which
owns concurrency, retries, progress, cancelling and the answer log; this module checks the
flags and the template against the frame before anything is sent, hands the frame and the
template to the runner (which fills each row's prompt with the magic's safe interpolation,
from the row's columns only, never the notebook's other variables), and writes the answers
back into the frame in place.

Rows are independent prompts: the conversation's history is never sent with a row and the
rows do not join it, so ``--no-history`` is implied (and accepted). Flags that only say how
one streamed answer is shown are refused: ``-f`` (the column holds the text; ``--schema``
gives fields) and ``--no-interpolate`` (every row would get the same prompt).

Images: a ``{column}`` whose row values are images (PIL images, PNG bytes, ``pathlib.Path``
objects...) attaches each row's own image (the core does it as it fills the row);
``--image NAME_OR_PATH`` attaches one notebook image or file to every row.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import LocalMindError
from .batch_columns import column_names, fill_columns
from .interpolation import interpolate
from .request_options import FlagError, sampling_options, structured_options

if TYPE_CHECKING:
    from argparse import Namespace

    from .magic import LocalMind

__all__ = ["run_batch_cell"]

_EXAMPLE = "e.g. %%localmind --over reviews --into label"


def run_batch_cell(magic: LocalMind, args: Namespace, cell: str, spec: str | None) -> None:
    """Check everything, run the rows through the batch runner, fill the column, summarise."""
    shell = magic.shell
    assert shell is not None
    try:
        frame, template = _checked(args, cell, shell.user_ns)
        backend, model = magic.session.resolve(spec, magic.default_model)
        capabilities = backend.model_capabilities(model)
        options = sampling_options(args)
        options.update(structured_options(args, shell.user_ns, "text", capabilities))
        _check_outputs(args, template, frame, options.get("schema"))
        images = _shared_images(args, frame, shell.user_ns)
        if images:
            options["images"] = images
    except (FlagError, LocalMindError) as exc:
        magic._say(str(exc), error=True)
        return

    from ..python_api import batch

    try:
        # The runner fills the template from each row and checks it (a column the template
        # names but the frame lacks, a row it cannot fill) before the first request.
        result = batch(
            frame,
            f"{backend.name}:{model}",
            template=template,
            concurrency=args.concurrency,
            **options,
        )
    except LocalMindError as exc:
        magic._say(str(exc), error=True)
        return
    written = fill_columns(frame, args.into, result)
    shell.user_ns["_localmind"] = result
    if args.output:
        shell.user_ns[args.output] = result
    logged = magic.session.loader.answer_log is not None
    magic._say(_summary(args.over, written, result, logged=logged))


def _checked(args: Namespace, cell: str, namespace: Mapping[str, Any]) -> tuple[Any, str]:
    """The frame and the template, or ``FlagError`` saying what is wrong and how to fix it."""
    if args.over is None and args.into is None:
        raise FlagError(
            f"--concurrency {args.concurrency} needs --over DF --into COLUMN: it says how many "
            f"rows of a batch are sent at once ({_EXAMPLE} --concurrency 8)"
        )
    if args.over is None:
        raise FlagError(
            f"--into needs --over DF: the DataFrame whose rows are the prompts ({_EXAMPLE})"
        )
    if args.into is None:
        raise FlagError(
            f"--over {args.over} needs --into COLUMN: the column the answers go to ({_EXAMPLE})"
        )
    if args.format is not None:
        raise FlagError(
            f"-f {args.format} cannot be used with --over: the column holds each answer's text "
            "(use --schema NAME to get the answer's fields as columns)"
        )
    if args.no_interpolate:
        raise FlagError(
            "--no-interpolate cannot be used with --over: the cell is a template whose "
            "{column} placeholders are filled from each row"
        )
    if args.over not in namespace:
        raise FlagError(f"--over {args.over}: no variable named {args.over!r} in the notebook")
    frame = namespace[args.over]
    pandas = sys.modules.get("pandas")
    if pandas is None or not isinstance(frame, pandas.DataFrame):
        raise FlagError(
            f"--over {args.over}: {args.over} is a {type(frame).__name__}, not a pandas "
            "DataFrame; for a list or a Series of prompts use localmind_jupyter.batch(...)"
        )
    if not args.into.isidentifier():
        raise FlagError(
            f"--into {args.into}: not a valid column name; use letters, digits and _, "
            "not starting with a digit (e.g. --into label)"
        )
    if len(frame) == 0:
        raise FlagError(f"--over {args.over}: the DataFrame has no rows")
    template = cell.strip("\n")
    if not template.strip():
        raise FlagError(
            "the cell is empty: write the prompt template below %%localmind, with {column} "
            "where each row's value goes"
        )
    return frame, template


def _shared_images(args: Namespace, frame: Any, namespace: Mapping[str, Any]) -> list[Any]:
    """``--image``: the same images for every row; a column is named in the template."""
    from ..core._attach import Attachments
    from .prompt_images import add_named_image

    attachments = Attachments()
    for item in args.image or ():
        if item not in namespace and item in frame.columns:
            raise FlagError(
                f"--image {item}: {item} is a column of {args.over}; write {{{item}}} in the "
                "template where each row's image goes (a column of images or of "
                "pathlib.Path objects: df[col].map(Path))"
            )
        add_named_image(attachments, item, namespace)
    return list(attachments.images)


def _read_columns(template: str, frame: Any) -> set[str]:
    """The frame's columns the template reads (``{review}``, ``{meta['lang']}``)."""
    heads = {_head(p) for p in interpolate(template, {}).missing}
    return {c for c in frame.columns if isinstance(c, str) and c in heads}


def _head(placeholder: str) -> str:
    """``review`` of ``review``, ``review.upper`` or ``meta['lang']``."""
    for index, char in enumerate(placeholder):
        if char in ".[":
            return placeholder[:index]
    return placeholder


def _check_outputs(args: Namespace, template: str, frame: Any, schema: Any) -> None:
    """The answers must not overwrite a column the template reads (a rerun would read them)."""
    read = _read_columns(template, frame)
    clash = [c for c in column_names(args.into, schema) if c in read]
    if clash:
        raise FlagError(
            f"--into {args.into}: the template reads {{{clash[0]}}}, and the answers would "
            "overwrite it; write them to another column"
        )


def _summary(over: str, written: list[str], result: Any, *, logged: bool) -> str:
    """One line: rows answered, where they went, how long; what failed or is left, and how
    to see or resume it (a rerun skips answered rows only when the answer log is on)."""
    counts = result.counts
    failed, left = counts["error"], counts["cancelled"]
    where = ", ".join(f"{over}[{c!r}]" for c in written)
    parts = [
        f"{counts['ok']} of {len(result)} rows answered into {where} in {result.elapsed:.1f} s"
    ]
    if result.cached:
        parts[0] += f" ({result.cached} from the answer log)"
    if failed:
        parts.append(
            f"{failed} row{'' if failed == 1 else 's'} failed (left empty): "
            "_localmind.errors says why"
            + ("; run the cell again to retry only those" if logged else "")
        )
    if left:
        parts.append(
            f"stopped: {left} rows not answered (left empty); "
            + (
                "run the cell again to send only those, the finished rows come from the answer log"
                if logged
                else "the answer log is off (log: false), so running the cell again sends every row"
            )
        )
    return " — ".join(parts)
