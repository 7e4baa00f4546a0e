"""Model names that are file paths, for the in-process backends: absolute paths only.

A relative name (``dir/sub``, ``models/x.gguf``, ``./x``) is never looked up in the working
folder: that folder is the notebook's in a kernel but the server's behind the REST API,
and answering "does not exist" there would tell a caller which files exist. Relative
names are listed names (the bundled model, ``model_dirs`` entries) or Hub ids only.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelNotFound

_RELATIVE_PREFIXES = ("./", "../", ".\\", "..\\")


def absolute_path(name: str) -> Path | None:
    """The path ``name`` gives when it is absolute (``/...``, ``~/...``, a drive); else None."""
    try:
        path = Path(name).expanduser()
    except RuntimeError:  # ~someone with no such user: not a path we can read
        return None
    return path if path.is_absolute() else None


def refuse_relative(name: str, what: str) -> None:
    """``./x``, ``../x`` (and ``dir\\x`` on Windows) get one answer, whether or not they exist."""
    if absolute_path(name) is not None:
        return
    windows_path = os.sep != "/" and os.sep in name
    if name in {".", ".."} or name.startswith(_RELATIVE_PREFIXES) or windows_path:
        raise ModelNotFound(relative_message(name, what))


def relative_message(name: str, what: str) -> str:
    return (
        f"model path '{name}' is relative: give {what} by its absolute path (/... or ~/...), "
        "or put it in a model_dirs folder and use its name"
    )
