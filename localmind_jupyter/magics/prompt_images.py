"""A cell's prompt and the images it attaches: ``{fig}``, ``{Out[3]}`` and ``--image``.

Front end only: which values are images and how they are read is the core's
(``core.images``); this module decides where they come from. A ``{name}`` or ``{Out[n]}``
whose value is an image is attached where it stands (``[image N]`` in the text);
``--image NAME_OR_PATH`` (repeatable) names a notebook variable first, else a file path
relative to the kernel's working folder (the notebook's). A bad image is an ``ImageError``
raised before anything is sent; the cell (the prompt) is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core._attach import Attachments
from ..core.interpolation import describe_missing, interpolate

if TYPE_CHECKING:
    from argparse import Namespace

    from ..core.images import ImageInput
    from .magic import LocalMind

__all__ = ["add_named_image", "cell_prompt"]


def add_named_image(attachments: Attachments, item: str, namespace: Mapping[str, Any]) -> None:
    """``--image ITEM``: the variable ``ITEM`` (an image, or a str path), else the file."""
    from ..core._attach import labelled
    from ..core.images import ImageError, to_image

    if item.isidentifier() and item in namespace:
        value = namespace[item]
        # A str variable holds a path; anything else must be an image (to_image says why not).
        value = Path(value) if isinstance(value, str) else value
        attachments.add(labelled(to_image(value, item), item, value))
        return
    path = Path(item).expanduser()
    if not path.exists():
        raise ImageError(
            f"--image {item}: no variable of that name in the notebook and no such file "
            f"(looked in {Path.cwd().name or '.'}/ for a relative path)"
        )
    attachments.add(to_image(path, path.name))


def cell_prompt(
    magic: LocalMind, args: Namespace, cell: str
) -> tuple[str, list[ImageInput]] | None:
    """The cell filled from the notebook, and its images; None (said why) when it cannot run."""
    from ..errors import LocalMindError

    shell = magic.shell
    assert shell is not None
    prompt = cell.strip("\n")
    attachments = Attachments()
    try:
        if not args.no_interpolate:
            filled = interpolate(
                prompt, shell.user_ns, errors=magic.session.cell_errors, attach=attachments.attach
            )
            prompt = filled.text
            missing = describe_missing(filled.missing)
            if missing:
                magic._say(missing)
        for item in args.image or ():
            add_named_image(attachments, item, shell.user_ns)
    except LocalMindError as exc:  # ImageError: a bad image, said before anything is sent
        magic._say(str(exc), error=True)
        return None
    if not prompt.strip():
        magic._say("the cell is empty: write the prompt below %%localmind", error=True)
        return None
    return prompt, attachments.images
