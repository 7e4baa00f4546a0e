"""Fill ``{name}`` placeholders in a ``%%localmind`` prompt from the notebook's namespace.

A prompt is free text that very often contains code, JSON and dict literals, so this is not
``str.format``: it never raises, never evaluates code (only ``getattr`` and ``getitem``), and
leaves anything that is not a plain placeholder exactly as written.

What is filled (only outside other braces and outside f-string literals):

* ``{name}``, ``{obj.attr}``, ``{data['key']}``, ``{items[0]}``, ``{items[-1]}`` and chains of
  those: ``str()`` of the value;
* ``{In[3]}``, ``{Out[3]}``: IPython's input and output history (ordinary namespace lookups);
* ``{Err[3]}``: the error cell 3 raised, from the ``errors`` mapping, as ``"Type: message"``;
* ``{{`` and ``}}``: a literal ``{`` and ``}``.

With ``attach``, a value the callback takes (an image, for a vision model) is not
stringified: the callback returns the text that stands in its place (``[image 1]``) and
keeps the value. The core holds no front-end logic: which values are taken is the caller's.

Everything else in braces (dicts, sets, comprehensions, ``{ name }`` with spaces, ``{x!r}``,
``{0}``, ``{}``, unbalanced or nested braces) is text. A placeholder that cannot be filled stays
as written and is listed in ``missing``. Values are inserted once and never re-interpolated.
"""

from __future__ import annotations

import keyword
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Attach", "Interpolated", "describe_missing", "interpolate"]

#: ``attach(value, expression)``: the text to insert instead of ``str(value)`` (a marker such
#: as ``"[image 1]"``) when the caller takes the value, else None. What it raises (a bad
#: image) propagates: the prompt must not be sent without the value it names.
Attach = Callable[[object, str], str | None]


@dataclass(frozen=True)
class Interpolated:
    """The filled prompt, plus what was and was not filled, so the magic can say so in one line.

    ``missing`` and ``filled`` hold placeholder expressions without braces (``"nope"``,
    ``"Out[99]"``), deduplicated, in the order they first appear.
    """

    text: str
    missing: tuple[str, ...] = ()
    filled: tuple[str, ...] = ()


# --- grammar ---------------------------------------------------------------------------------
# A placeholder is an identifier followed by ``.attr`` / ``[int]`` / ``['str']`` trailers, with no
# spaces anywhere: ``{ name }`` or ``{a + b}`` is code or prose, not a placeholder.
_IDENT = r"[^\W\d]\w*"
_KEY = r"""-?\d+|'[^'\\\n{}]*'|"[^"\\\n{}]*\""""
_EXPR = rf"{_IDENT}(?:\.{_IDENT}|\[(?:{_KEY})\])*"

# The one scan over the prompt. Alternatives are tried in order at each position, so ``{{`` and
# ``}}`` win over a lone brace, and a whole f-string literal (``f"..."``, ``rf'...'``,
# triple-quoted), braces included, is consumed as one token. The leading lookahead lets the
# engine skip quickly over text that cannot start a token.
_TOKEN = re.compile(
    rf"""
    (?=[{{}}fF])
    (?:
      (?P<fstr>
        (?:(?<!\w)|(?<=(?<!\w)[rR]))[fF][rR]?
        (?:'''(?:[^\\]|\\.)*?'''|\"\"\"(?:[^\\]|\\.)*?\"\"\"|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
      )
      |(?P<esc_open>\{{\{{)
      |(?P<esc_close>\}}\}})
      |(?P<place>\{{(?P<expr>{_EXPR})\}})
      |(?P<open>\{{)
      |(?P<close>\}})
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_G_ESC_OPEN, _G_ESC_CLOSE, _G_PLACE, _G_OPEN, _G_CLOSE, _G_EXPR = (
    _TOKEN.groupindex[name] for name in ("esc_open", "esc_close", "place", "open", "close", "expr")
)
_HEAD = re.compile(_IDENT)
_TRAILER = re.compile(rf"\.({_IDENT})|\[({_KEY})\]")

_ESC_MARK = -1  # a ``{{`` on the brace stack (the other entries are offsets, >= 0)
_LITERAL = -1  # an event that is an escape: its text is inserted as is

_UNFILLED = object()  # the placeholder could not be filled: leave it, report it
_NOT_PLACEHOLDER = object()  # looked like one but is not (``{None}``): leave it, say nothing


def interpolate(
    template: str,
    namespace: Mapping[str, Any],
    *,
    errors: Mapping[int, BaseException] | None = None,
    attach: Attach | None = None,
) -> Interpolated:
    """Fill the placeholders of ``template`` from ``namespace``; never raises on any text.

    ``errors`` maps execution counts to the exception that cell raised, for ``{Err[n]}``; when it
    is ``None``, ``Err`` is an ordinary name looked up in ``namespace``. ``attach`` is offered
    every value first (see ``Attach``); only what it raises can escape.

    One regex scan pairs the braces of the text (so a placeholder inside a dict literal or code
    block is seen as part of it, and the ``}}`` closing a nested dict is not an escape); then
    only the placeholders and escapes it found are written out. A ``{`` that never closes does
    not hide the placeholders after it.
    """
    if "{" not in template and "}" not in template:
        return Interpolated(template)
    events, unclosed = _scan(template)

    pieces: list[str] = []
    missing: dict[str, None] = {}
    filled: dict[str, None] = {}
    values: dict[str, object] = {}  # each expression is looked up once per prompt
    last = 0
    for start, end, text, opens in events:
        if opens != _LITERAL:
            # A ``{`` open here that closes later makes this part of a dict or a code block;
            # a ``{`` that never closes (all of them are still open here) does not.
            if opens - bisect_left(unclosed, start):
                continue
            value = values.get(text, values)
            if value is values:
                value = values[text] = _text(_resolve(text, namespace, errors), text, attach)
            if value is _NOT_PLACEHOLDER:
                continue
            if value is _UNFILLED:
                missing[text] = None
                continue
            filled[text] = None
            text = value  # type: ignore[assignment]
        pieces.append(template[last:start])
        pieces.append(text)
        last = end
    if not pieces:
        return Interpolated(template, tuple(missing), tuple(filled))
    pieces.append(template[last:])
    return Interpolated("".join(pieces), tuple(missing), tuple(filled))


def describe_missing(missing: Iterable[str]) -> str | None:
    """One line naming the placeholders left unfilled, or ``None`` when all were filled.

    The magic shows it as a notice, not an error: the braces may well have been meant literally.
    """
    names = list(dict.fromkeys(missing))
    if not names:
        return None
    return "not filled (not defined): " + ", ".join("{" + name + "}" for name in names)


def _scan(template: str) -> tuple[list[tuple[int, int, str, int]], list[int]]:
    """Find the placeholders and escapes, pairing the text's braces on the way.

    Returns the events ``(start, end, text, opens)``: for a placeholder, ``text`` is its
    expression and ``opens`` how many ``{`` are open around it; for an escape, ``text`` is the
    brace to insert and ``opens`` is ``_LITERAL``. Also returns the offsets of the ``{`` that
    never close, in order. A brace only touches the stack: prompts can be megabytes of JSON.
    """
    events: list[tuple[int, int, str, int]] = []
    stack: list[int] = []  # offsets of the open ``{``, or _ESC_MARK for a ``{{``
    opens = 0  # how many entries of ``stack`` are ``{``
    for match in _TOKEN.finditer(template):
        group = match.lastindex
        if group == _G_OPEN:
            stack.append(match.start())
            opens += 1
        elif group == _G_CLOSE:
            if stack and stack[-1] != _ESC_MARK:
                stack.pop()
                opens -= 1
        elif group == _G_PLACE:
            events.append((match.start(), match.end(), match.group(_G_EXPR), opens))
        elif group == _G_ESC_CLOSE:
            if stack and stack[-1] != _ESC_MARK:
                # Closing braces of the text, as in {"a": {"b": 1}}: not an escape.
                stack.pop()
                opens -= 1
                if stack and stack[-1] != _ESC_MARK:
                    stack.pop()
                    opens -= 1
            else:
                if stack:
                    stack.pop()  # the ``{{`` this ``}}`` answers
                events.append((match.start(), match.end(), "}", _LITERAL))
        elif group == _G_ESC_OPEN:
            stack.append(_ESC_MARK)
            events.append((match.start(), match.end(), "{", _LITERAL))
        # else an f-string literal: code, whose braces are left alone.
    return events, [offset for offset in stack if offset != _ESC_MARK]


def _text(value: object, expr: str, attach: Attach | None) -> object:
    """What goes in the placeholder's place: the marker ``attach`` gives, else ``str(value)``
    (``_UNFILLED`` when that raises); the two sentinels pass through."""
    if value is _UNFILLED or value is _NOT_PLACEHOLDER:
        return value
    if attach is not None:
        marker = attach(value, expr)
        if marker is not None:
            return marker
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a prompt must never fail on a bad placeholder
        return _UNFILLED


def _resolve(
    expr: str, namespace: Mapping[str, Any], errors: Mapping[int, BaseException] | None
) -> object:
    """The value of one placeholder, ``_UNFILLED``, or ``_NOT_PLACEHOLDER`` for ``{None}`` etc.

    Only ``getattr`` and ``getitem``: a placeholder cannot call anything, though a property or a
    ``__getitem__`` it reaches runs as it would in the notebook. Any exception means unfilled.
    """
    head = _HEAD.match(expr)
    if head is None or keyword.iskeyword(head.group()):
        return _NOT_PLACEHOLDER
    name = head.group()
    trailers = list(_TRAILER.finditer(expr, head.end()))
    try:
        as_error = False
        if name == "Err" and errors is not None:
            if not trailers or trailers[0].group(2) is None:
                return _UNFILLED
            obj: Any = errors[_key(trailers[0].group(2))]  # type: ignore[index]
            trailers = trailers[1:]
            as_error = not trailers
        else:
            obj = namespace[name]
        for trailer in trailers:
            attr, key = trailer.groups()
            obj = getattr(obj, attr) if attr is not None else obj[_key(key)]
        return _format_error(obj) if as_error else obj
    except Exception:  # noqa: BLE001 - a prompt must never fail on a bad placeholder
        return _UNFILLED


def _key(text: str) -> int | str:
    """A subscript key as written: ``3``, ``-1``, ``'name'`` or ``"name"``."""
    if text[0] in "'\"":
        return text[1:-1]
    return int(text)


def _format_error(error: object) -> str:
    """``"ZeroDivisionError: division by zero"``, the way a traceback's last line reads."""
    if not isinstance(error, BaseException):
        return str(error)
    message = str(error)
    name = type(error).__name__
    return f"{name}: {message}" if message else name
