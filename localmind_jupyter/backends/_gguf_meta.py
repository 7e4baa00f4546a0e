"""One value of a GGUF file's metadata, read without loading the model: its chat template.

(Or any other string value: ``general.architecture`` tells a projector, ``clip``, from a model.)

``model_capabilities`` needs to know whether a model can think (its chat template writes
``<think>`` or reads ``enable_thinking``), and ``think=`` what the template can switch,
when a catalog is listed or options are checked, long before any model loads. The ``gguf`` package's
reader parses every tensor and takes seconds; this walks the key-value header only
(tens of milliseconds for a 50k-token vocabulary) and stops at the template.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["ThinkSwitch", "chat_template", "string_value", "template_thinks", "think_switch"]

_TEMPLATE_KEY = b"tokenizer.chat_template"
#: Sizes of the fixed-size value types of the GGUF format (type id -> bytes).
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Malformed(Exception):
    pass


def _u32(buf: mmap.mmap, at: int) -> int:
    value: int = struct.unpack_from("<I", buf, at)[0]
    return value


def _u64(buf: mmap.mmap, at: int) -> int:
    value: int = struct.unpack_from("<Q", buf, at)[0]
    return value


def _skip(buf: mmap.mmap, at: int, kind: int) -> int:
    """The offset after one value of type ``kind`` starting at ``at``."""
    if kind in _FIXED:
        return at + _FIXED[kind]
    if kind == _STRING:
        return at + 8 + _u64(buf, at)
    if kind == _ARRAY:
        item, count = _u32(buf, at), _u64(buf, at + 4)
        at += 12
        if item in _FIXED:
            return at + _FIXED[item] * count
        for _ in range(count):
            at = _skip(buf, at, item)
        return at
    raise _Malformed(kind)


def _read(path: Path, wanted: bytes = _TEMPLATE_KEY) -> str | None:
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF" or _u32(buf, 4) < 2:
            return None
        count, at = _u64(buf, 16), 24
        for _ in range(count):
            size = _u64(buf, at)
            key = buf[at + 8 : at + 8 + size]
            at += 8 + size
            kind = _u32(buf, at)
            at += 4
            if key == wanted and kind == _STRING:
                return buf[at + 8 : at + 8 + _u64(buf, at)].decode("utf-8", "replace")
            at = _skip(buf, at, kind)
    return None


@lru_cache(maxsize=64)
def _cached(path: str, _mtime_ns: int, _size: int, key: bytes = _TEMPLATE_KEY) -> str | None:
    try:
        return _read(Path(path), key)
    except (OSError, ValueError, struct.error, _Malformed):
        return None


def string_value(path: Path, key: str) -> str | None:
    """The file's string value under ``key``; None without one (or for an unreadable file)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _cached(str(path), stat.st_mtime_ns, stat.st_size, key.encode())


def chat_template(path: Path) -> str | None:
    """The file's ``tokenizer.chat_template``, None without one (or for an unreadable file)."""
    return string_value(path, _TEMPLATE_KEY.decode())


@dataclass(frozen=True)
class ThinkSwitch:
    """What a chat template does about thinking, read from its text."""

    #: It writes the ``<think>`` tag (the trace is then split out of the text).
    writes_tag: bool = False
    #: It reads ``enable_thinking`` (Qwen3-style): thinking can be switched on and off.
    on_off: bool = False
    #: It reads ``reasoning_effort`` (gpt-oss-style): a level can be passed.
    levels: bool = False

    @property
    def thinks(self) -> bool:
        """A model that writes a trace the backend keeps apart, or can be told to."""
        return self.writes_tag or self.on_off


_READS_ON_OFF = re.compile(r"\benable_thinking\b")
_READS_LEVEL = re.compile(r"\breasoning_effort\b")


def think_switch(path: Path) -> ThinkSwitch:
    """The file's template's thinking switch; nothing for no (or an unreadable) template."""
    template = chat_template(path)
    if template is None:
        return ThinkSwitch()
    return ThinkSwitch(
        writes_tag="<think>" in template,
        on_off=_READS_ON_OFF.search(template) is not None,
        levels=_READS_LEVEL.search(template) is not None,
    )


def template_thinks(path: Path) -> bool:
    """Whether the model thinks: its chat template writes ``<think>`` or reads
    ``enable_thinking``."""
    return think_switch(path).thinks
