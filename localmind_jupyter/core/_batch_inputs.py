"""What a batch runs over: an iterable of strings, a pandas Series, or a DataFrame and a template.

Everything is checked before the first request, so a typo in a template or a stray ``None``
in row 4,000 is one clear ``OptionError``, not a half-spent batch. pandas is never imported
here: a Series or DataFrame is recognised by its module, and only its own methods are used.

A template's ``{column}`` whose value in a row is an image (a PIL image, PNG bytes, a
``pathlib.Path``...) is attached to that row's prompt as the magic attaches ``{fig}``: the
text gets ``[image N]`` and the row's request its images (``BatchInputs.options_for``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import OptionError
from ._attach import Attachments
from .interpolation import interpolate

if TYPE_CHECKING:
    from .images import ImageInput

_HEAD = re.compile(r"[^\W\d]\w*")


@dataclass(frozen=True)
class BatchInputs:
    """The prompts, in order, and the input's index (pandas), so results line up with rows."""

    prompts: list[str]
    #: The Series' or DataFrame's index (None for a plain iterable): ``to_pandas()`` uses it.
    index: Any = None
    #: Each row's images from its ``{column}`` placeholders; None when no row attaches one.
    images: list[list[ImageInput]] | None = None

    def options_for(self, row: int, options: dict[str, Any]) -> dict[str, Any]:
        """The options of one row's request: its own images first (its ``[image N]``
        markers count from 1), then the images every row shares."""
        own = self.images[row] if self.images is not None else None
        if not own:
            return options
        return {**options, "images": [*own, *(options.get("images") or ())]}

    def sample_row(self) -> int:
        """The row whose request is checked before the batch starts: the first with images
        (so a model that cannot see is refused before anything is sent), else row 0."""
        rows = self.images or []
        return next((row for row, own in enumerate(rows) if own), 0)

    def label(self, row: int) -> str:
        """How to name a row in a message: its position, and its index label if it differs."""
        if self.index is None:
            return f"row {row}"
        key = self.index[row]
        return f"row {row}" if key == row else f"row {row} (index {key!r:.40})"


def _is_pandas(value: Any, kind: str) -> bool:
    cls = type(value)
    return cls.__module__.split(".")[0] == "pandas" and any(c.__name__ == kind for c in cls.__mro__)


def prepare_inputs(prompts: Any, template: str | None = None) -> BatchInputs:
    """Check and fill the prompts; raise ``OptionError`` saying which row or column is wrong."""
    if isinstance(prompts, str):
        raise OptionError(
            "prompts is one string; pass a list of prompts (batch([text]) for a single one)"
        )
    if _is_pandas(prompts, "DataFrame"):
        if template is None:
            columns = ", ".join(map(str, prompts.columns))
            raise OptionError(
                "a DataFrame needs template= saying how a row becomes a prompt, e.g. "
                f"template='Classify: {{review}}' (columns: {columns})"
            )
        return _from_frame(prompts, template)
    if _is_pandas(prompts, "Series"):
        index = prompts.index
        values = list(prompts.tolist())
    elif isinstance(prompts, Iterable) and not isinstance(prompts, (bytes, Mapping)):
        index = None
        values = list(prompts)
    else:
        raise OptionError(
            "prompts must be an iterable of strings, a pandas Series, or a DataFrame with "
            f"template=; got {type(prompts).__name__}"
        )
    inputs = BatchInputs(values, index)
    if not values:
        raise OptionError("the batch is empty: there are no prompts to send")
    if template is not None:
        raise OptionError(
            "template= fills a DataFrame's columns into each prompt; for a list or a Series, "
            "pass the finished prompts (e.g. [f'Classify: {t}' for t in texts])"
        )
    for row, value in enumerate(values):
        if not isinstance(value, str):
            raise OptionError(
                f"{inputs.label(row)} is {type(value).__name__} {value!r:.40}, not a string; "
                "every prompt must be text (convert with str() or drop the row)"
            )
    return inputs


def _check_template(template: Any) -> None:
    if not isinstance(template, str) or not template.strip():
        raise OptionError(f"template must be a non-empty string, got {template!r:.60}")


def _from_frame(frame: Any, template: str) -> BatchInputs:
    _check_template(template)
    columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise OptionError("the batch is empty: the DataFrame has no rows")
    wanted = [_HEAD.match(expr) for expr in interpolate(template, {}).missing]
    heads = list(dict.fromkeys(m.group() for m in wanted if m is not None))
    if not heads:
        raise OptionError(
            "the template names no column: write {column} where a row's value goes "
            f"(columns: {', '.join(columns)})"
        )
    absent = [h for h in heads if h not in columns]
    if absent:
        shown = ", ".join("{" + h + "}" for h in absent)
        raise OptionError(
            f"the template names {shown}, which the DataFrame has no column for; "
            f"columns: {', '.join(columns)}"
        )
    inputs = BatchInputs([], frame.index)
    records = frame[heads].to_dict("records")
    filled = [_fill(template, record, inputs, i, heads) for i, record in enumerate(records)]
    images = [own for _text, own in filled]
    return BatchInputs(
        [text for text, _own in filled], frame.index, images if any(images) else None
    )


def _fill(
    template: str, namespace: Mapping[str, Any], inputs: BatchInputs, row: int, heads: list[str]
) -> tuple[str, list[ImageInput]]:
    attachments = Attachments()
    try:
        filled = interpolate(template, namespace, attach=attachments.attach)
    except OptionError as exc:  # ImageError: a bad image in this row
        raise type(exc)(f"{inputs.label(row)}: {exc}") from None
    if filled.missing:
        shown = ", ".join("{" + m + "}" for m in filled.missing)
        raise OptionError(
            f"{inputs.label(row)}: the template's {shown} cannot be filled from that row "
            f"(placeholders read {', '.join(heads)})"
        )
    return filled.text, attachments.images
