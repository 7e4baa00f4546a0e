"""Reading config YAML safely: bounded alias expansion, nesting and size; parsed once per text.

YAML aliases (``*name``) let a 1 KB file stand for a billion values ("billion laughs"):
PyYAML builds that graph in milliseconds, but everything that walks it afterwards
(key lines, validation, masking) expands it and blocks the kernel for minutes. So the
expanded size and depth are counted while the file is composed, before any Python
object is built, and a file over the limits is refused with the line of the alias.
Every front end asks for the config on each use, so the parsed document is cached by
the file's text: an unchanged file is never parsed twice, an edited one is.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from typing import Any

import yaml
from yaml.events import AliasEvent

from .errors import ConfigError

#: Values (scalars, lists, mappings) a config may have once its aliases are expanded.
MAX_NODES = 10_000
#: Levels of nesting (``backends`` > name > ``settings`` > key is four).
MAX_DEPTH = 32
#: Bytes a config file may have; a real one has a few KB.
MAX_BYTES = 1_048_576
#: Different texts whose parse is remembered (a config edited back and forth).
_CACHE_SIZE = 8

#: (data, nodes, None) for a good text; (None, None, (message, line)) for a refused one.
_Parsed = tuple[Any, "yaml.Node | None", "tuple[str, int | None] | None"]
_cache: OrderedDict[tuple[str, str], _Parsed] = OrderedDict()
_cache_lock = threading.Lock()
_stats = {"parses": 0, "hits": 0}


class _Refused(Exception):
    """A limit was hit while composing; carries the message and the 1-based line."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts values and depth as aliases would expand them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded = 0  # values so far, every alias counted as its whole anchored node
        self._aliases = 0
        self._depth = 0  # depth of the node being composed (the root is 1)
        self._deepest = 0  # deepest level reached, aliases expanded
        self._open: set[str] = set()  # anchors whose node is still being composed
        self._sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, height)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            if event.anchor in self._open:
                raise _Refused(
                    f"the alias *{event.anchor} refers to a value that contains it (a loop); "
                    "remove the alias",
                    line,
                )
            if event.anchor in self._sizes:
                values, height = self._sizes[event.anchor]
                self._aliases += 1
                self._count(values, line)
                self._reach(self._depth + 1 + height, line)
            return super().compose_node(parent, index)
        anchor = event.anchor
        self._depth += 1
        self._reach(self._depth, line)
        self._count(1, line)
        before_values, before_deepest = self._expanded - 1, self._deepest
        if anchor is not None:
            self._open.add(anchor)
            self._deepest = self._depth
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = (self._expanded - before_values, self._deepest - self._depth - 1)
            self._deepest = max(self._deepest, before_deepest)
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            # e.g. an integer of more than 4300 digits: Python refuses to convert it.
            message = str(exc).split(";")[0] or type(exc).__name__
            raise _Refused(f"invalid value: {message}", node.start_mark.line + 1) from None

    def _count(self, values: int, line: int) -> None:
        self._expanded += values
        if self._expanded <= MAX_NODES:
            return
        if self._aliases:
            raise _Refused(
                f"YAML aliases (*name) expand this file to more than {MAX_NODES} values by "
                "this line; write the values out instead of nesting aliases",
                line,
            )
        raise _Refused(
            f"the file has more than {MAX_NODES} values; a LocalMind config needs a few dozen",
            line,
        )

    def _reach(self, depth: int, line: int) -> None:
        self._deepest = max(self._deepest, depth)
        if depth > MAX_DEPTH:
            raise _Refused(
                f"values are nested more than {MAX_DEPTH} levels deep here; "
                "a LocalMind config needs a few levels (check for unclosed [ or {)",
                line,
            )


def check_size(size: int, where: str) -> None:
    """Refuse a file too big to be a config before reading it."""
    if size > MAX_BYTES:
        raise ConfigError(
            f"the file is {size / 1_048_576:.1f} MB; a config file may have at most "
            f"{MAX_BYTES // 1_048_576} MB (is this the right file?)",
            path=where,
        )


def load_yaml(text: str, where: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node graph (for key lines); ConfigError for bad YAML.

    The result is cached by text; callers get their own copy of the data.
    """
    key = (where, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            _stats["hits"] += 1
    if cached is None:
        cached = _parse(text, where)
        with _cache_lock:
            _stats["parses"] += 1
            _cache[key] = cached
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    data, node, error = cached
    if error is not None:
        message, line = error
        raise ConfigError(message, path=where, line=line)
    return copy.deepcopy(data), node


def cache_info() -> dict[str, int]:
    """How many texts were parsed and how many answers came from the cache."""
    with _cache_lock:
        return dict(_stats)


def _parse(text: str, where: str) -> _Parsed:
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        return None, None, (str(exc), exc.line)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        message = f"invalid YAML: {problem} (check indentation, colons and quotes)"
        return None, None, (message, mark.line + 1 if mark else None)
    except yaml.YAMLError as exc:
        return None, None, (f"invalid YAML: {exc}", None)
    finally:
        loader.dispose()
    return data, node, None
