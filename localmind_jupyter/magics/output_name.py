"""Which names ``-o VAR`` may bind: a variable of the user's own, never one Python or IPython keeps.

Binding ``__builtins__``, ``In`` or ``get_ipython`` in the user namespace breaks the
kernel for every later cell, so such names are refused before anything is generated.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Container

#: Names IPython puts in the user namespace (history, the shell, exiting) and LocalMind's own.
RESERVED = frozenset(
    {
        "In",
        "Out",
        "get_ipython",
        "exit",
        "quit",
        "_ih",
        "_oh",
        "_dh",
        "_",
        "__",
        "___",
        "_i",
        "_ii",
        "_iii",
        "_localmind",
    }
)
# IPython's per-cell history names: _5 is Out[5], _i5 is In[5].
_NUMBERED = re.compile(r"_i?\d+")
_EXAMPLE = "e.g. -o answer"


def output_name_problem(name: str, hidden: Container[str] = ()) -> str | None:
    """Why ``name`` cannot be the ``-o`` variable, or None when it can.

    ``hidden`` is the shell's ``user_ns_hidden``: every name IPython itself defined.
    """
    if not name.isidentifier():
        return (
            f"-o {name}: not a Python variable name; use letters, digits and _, "
            f"not starting with a digit ({_EXAMPLE})"
        )
    if keyword.iskeyword(name):
        return f"-o {name}: {name!r} is a Python keyword; pick another name ({_EXAMPLE})"
    if name.startswith("__") and name.endswith("__"):
        return (
            f"-o {name}: names like __name__ belong to Python itself and rebinding them "
            f"breaks the kernel; pick another name ({_EXAMPLE})"
        )
    if name in RESERVED or name in hidden or _NUMBERED.fullmatch(name):
        return (
            f"-o {name}: IPython or LocalMind keep {name!r} for themselves (In, Out, _, _5, "
            f"get_ipython, exit, _localmind …); pick another name ({_EXAMPLE})"
        )
    return None
