"""What a backend (or one of its models) can do, declared once and read by every front end.

A front end never guesses from a backend's type or methods whether it can download, take
a seed or stream: it asks ``backend.capabilities`` (``model_capabilities(model)`` where one
model differs) and shows or refuses accordingly. Model names are checked the same way:
``backend.validate_model_name(name)`` holds each backend's own name grammar.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, cast

from ..errors import OptionError

if TYPE_CHECKING:
    from .contracts import CapabilitiesDict

#: Longer names are refused by the generic check (no engine needs more).
MAX_MODEL_NAME = 200


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers. Be honest: a front end hides or refuses what is False here."""

    #: ``download_model`` fetches models (False: remote models, or nothing to fetch).
    downloads: bool = True
    #: Text arrives piece by piece (False: one piece, the whole answer, at the end).
    streaming: bool = True
    #: Output constrained to a JSON schema.
    json_schema: bool = False
    #: Separate "thinking" text besides the answer.
    thinking: bool = False
    #: Images in the prompt.
    images: bool = False
    #: ``seed`` makes sampling reproducible (False: the option is refused, not ignored).
    seed: bool = True

    def to_dict(self) -> CapabilitiesDict:
        return cast("CapabilitiesDict", asdict(self))


class ModelNameError(OptionError):
    """A model name the backend could never know (bad characters, wrong shape)."""


def check_generic_name(name: str, what: str = "model name", *, spaces: bool = False) -> None:
    """The rules every backend shares: non-empty, short, no control characters, no spaces.

    ``spaces``: allow them (a file path may hold some; a model id never does).
    """
    if not name:
        raise ModelNameError(f"the {what} is empty; name a model")
    if len(name) > MAX_MODEL_NAME:
        raise ModelNameError(f"the {what} is longer than {MAX_MODEL_NAME} characters")
    for char in name:
        if unicodedata.category(char).startswith("C"):
            raise ModelNameError(
                f"the {what} contains the control character U+{ord(char):04X}; remove it"
            )
    if not spaces and any(char.isspace() for char in name):
        raise ModelNameError(f"the {what} contains whitespace ({name!r}); model ids have none")


def refuse_unsupported(capabilities: Capabilities, display_name: str, seed: object) -> None:
    """An option the backend declared it cannot honour fails loudly instead of being dropped."""
    if seed is not None and not capabilities.seed:
        raise OptionError(
            f"the {display_name} backend does not support seed: its sampling cannot be made "
            "reproducible; leave seed out (temperature=0 gives the most repeatable answers)"
        )
