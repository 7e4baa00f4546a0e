"""The magic's structured-output and thinking flags, turned into ``generate_stream`` options.

Front end only: what a schema means, whether a model can think or enforce JSON, and which
``--option`` keys a backend takes are the backend's business. This module finds the
``--schema`` value in the notebook, parses ``--option KEY=VALUE`` and ``--think``, and asks
the model's declared capabilities whether ``-f json`` can use a JSON mode.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from argparse import Namespace

    from ..backends.capabilities import Capabilities

#: ``--think``'s levels (a bare ``--think`` is True).
THINK_LEVELS = ("low", "medium", "high")


class FlagError(ValueError):
    """A flag's value is wrong: shown as the magic's one-line error, no traceback."""


def schema_from_namespace(name: str, namespace: Mapping[str, Any]) -> Any:
    """The pydantic class or JSON Schema dict that ``--schema NAME`` names."""
    if name not in namespace:
        raise FlagError(
            f"--schema {name}: no variable named {name!r} in the notebook; define a pydantic "
            "BaseModel subclass or a JSON Schema dict under that name first"
        )
    value = namespace[name]
    from pydantic import BaseModel

    if isinstance(value, type) and issubclass(value, BaseModel):
        return value
    if isinstance(value, BaseModel):
        kind = type(value).__name__
        raise FlagError(
            f"--schema {name}: {name} is an instance of {kind}; pass the class, not an "
            f"instance (--schema {kind})"
        )
    if isinstance(value, dict):
        return value
    raise FlagError(
        f"--schema {name}: {name} is a {type(value).__name__}, not a pydantic BaseModel "
        "subclass or a JSON Schema dict"
    )


def parse_option_items(items: list[str] | None) -> dict[str, Any]:
    """``--option KEY=VALUE`` (repeatable): VALUE as JSON where it parses, else the string."""
    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise FlagError(
                f"--option {item!r}: write KEY=VALUE (e.g. --option num_ctx=4096); "
                "VALUE is read as JSON where it parses, else as text"
            )
        if key in options:
            raise FlagError(f"--option {key} is given twice")
        try:
            options[key] = json.loads(raw)
        except ValueError:  # not JSON (or a number past Python's int limit): the text
            options[key] = raw
    return options


def think_value(args: Namespace) -> bool | str | None:
    """``--think [LEVEL]`` / ``--no-think``; None (neither) leaves the model's default."""
    if args.think is not None and args.no_think:
        raise FlagError("--think and --no-think contradict each other: give one of them")
    if args.no_think:
        return False
    return args.think  # type: ignore[no-any-return]


def sampling_options(args: Namespace) -> dict[str, Any]:
    """``-s``, ``-t``, ``--max-tokens``, ``--top-p``, ``--seed``, ``--stop``: those given."""
    given = {
        "system": args.system,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "top_p": args.top_p,
        "seed": args.seed,
        "stop": args.stop,
    }
    return {key: value for key, value in given.items() if value is not None}


def structured_options(
    args: Namespace, namespace: Mapping[str, Any], fmt: str, capabilities: Capabilities
) -> dict[str, Any]:
    """What the flags add to the request; raises ``FlagError`` with the message to show."""
    options: dict[str, Any] = {}
    if args.schema is not None:
        if args.format not in (None, "json"):
            raise FlagError(
                f"--schema shows the answer as JSON; leave -f {args.format} out (or use -f json)"
            )
        options["schema"] = schema_from_namespace(args.schema, namespace)
    elif fmt == "json" and capabilities.json_schema:
        options["json_mode"] = True  # a model that can be held to JSON is; else the text parsed
    think = think_value(args)
    if think is not None:
        options["think"] = think
    passthrough = parse_option_items(args.option)
    if passthrough:
        options["options"] = passthrough
    return options
