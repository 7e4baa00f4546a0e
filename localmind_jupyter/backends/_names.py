"""Name checks of the in-process backends: an absolute path, a listed name or a Hub id.

Only the shape is checked (``validate_model_name``), nothing is looked up; relative
paths get the one answer ``_paths`` gives them.
"""

from __future__ import annotations

import re

from ..errors import ModelNotFound
from . import _paths
from ._checks import check_generic_name
from .capabilities import ModelNameError


def check_local_name(name: str, type_name: str, grammar: re.Pattern[str], hint: str) -> str:
    """``name`` when it is an absolute path or matches ``grammar``; ``ModelNameError`` else."""
    if _paths.absolute_path(name) is not None:
        check_generic_name(name, spaces=True)
        return name
    try:
        _paths.refuse_relative(name, "a model file or folder")
    except ModelNotFound as exc:
        raise ModelNameError(str(exc)) from None
    check_generic_name(name)
    if any(part in {"", ".", ".."} for part in name.split("/")) or not grammar.fullmatch(name):
        raise ModelNameError(f"{name!r} is not a valid {type_name} model name; {hint}")
    return name


# A Hugging Face Hub id (owner/name) or a listed name (the bundled model, a model_dirs entry).
TRANSFORMERS_NAME = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}(?:/[A-Za-z0-9_][A-Za-z0-9_.-]{0,95})?"
)
TRANSFORMERS_HINT = (
    "write a listed model name, a Hugging Face Hub id like HuggingFaceTB/SmolLM2-360M-Instruct "
    "or an absolute path"
)
# A listed file name, or owner/repo/[sub/]file.gguf in the Hub.
_GGUF_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}"
GGUF_NAME = re.compile(rf"{_GGUF_SEGMENT}(?:/{_GGUF_SEGMENT})*")
GGUF_HINT = (
    "write a listed GGUF file name, owner/repo/file.gguf for a file of a Hugging Face Hub "
    "repository, or an absolute path"
)


def is_hub_id(name: str) -> bool:
    """``owner/name``: what ``%localmind pull NAME`` hands to a Hub backend."""
    return name.count("/") == 1 and TRANSFORMERS_NAME.fullmatch(name) is not None


#: ``owner/name`` as the Hub spells repository ids; ``..`` is refused separately.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def is_repo_id(name: str) -> bool:
    """A Hub repository id a download or a cache look-up may be given (no ``..``, no ``.git``)."""
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.endswith(".git")
