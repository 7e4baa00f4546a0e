"""Checks the base and the front ends run for every backend: name shape and refused options.

Internal: a plugin gets them through ``BaseBackend`` (``validate_model_name``,
``build_request``), never by importing this module.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

from ..errors import ModelNameError, OptionError

if TYPE_CHECKING:
    from .capabilities import Capabilities

#: Longer names are refused by the generic check (no engine needs more).
MAX_MODEL_NAME = 200


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


def refuse_unsupported(
    capabilities: Capabilities,
    display_name: str,
    seed: object,
    *,
    schema: object = None,
    json_mode: bool = False,
    think: object = None,
    images: bool = False,
    model: str = "",
    vision_example: str = "",
) -> None:
    """An option the backend declared it cannot honour fails loudly instead of being dropped."""
    if seed is not None and not capabilities.seed:
        raise OptionError(
            f"the {display_name} backend does not support seed: its sampling cannot be made "
            "reproducible; leave seed out (temperature=0 gives the most repeatable answers)"
        )
    which = (
        f"the model {model!r} of the {display_name} backend"
        if model
        else (f"the {display_name} backend")
    )
    if (schema is not None or json_mode) and not capabilities.json_schema:
        what = "schema" if schema is not None else "json_mode"
        raise OptionError(
            f"{which} cannot constrain its output to JSON, so {what} is refused rather than "
            "hoped for; pick a backend whose capabilities list json_schema (%localmind backends)"
        )
    if think not in (None, False) and not capabilities.thinking:
        raise OptionError(
            f"{which} has no separate thinking; leave think out, or pick a reasoning model"
        )
    if images and not capabilities.images:
        example = f"e.g. {vision_example!r} " if vision_example else ""
        named = repr(model) if model else "the model"
        raise OptionError(
            f"{named} on {display_name} cannot read images (it is a text-only "
            f"model); pick a vision model, {example}(`%localmind models --tag vision`), or "
            "leave the images out"
        )
