"""What a backend (or one of its models) can do, declared once and read by every front end.

A front end never guesses from a backend's type or methods whether it can download, take
a seed or stream: it asks ``backend.capabilities`` (``model_capabilities(model)`` where one
model differs) and shows or refuses accordingly. Model names are checked the same way:
``backend.validate_model_name(name)`` holds each backend's own name grammar.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, cast

from ..errors import ModelNameError

if TYPE_CHECKING:
    from .contracts import CapabilitiesDict

__all__ = ["Capabilities", "ModelNameError"]


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
