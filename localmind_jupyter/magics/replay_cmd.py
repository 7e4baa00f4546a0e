"""``%localmind replay [record|play|off] [PATH]``: the state, or switch the mode.

The notebook's path (``__session__``, which ipykernel sets in the user namespace) picks
the per-notebook recording file; everything else is the core's (``core/replay.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .magic import LocalMind

USAGE = "replay [record|play|off] [PATH]: record answers once, play them with no server"


def sync_notebook(shell: Any) -> None:
    """Tell replay which notebook this kernel runs (None: not known)."""
    from ..core.replay import set_notebook

    user_ns = getattr(shell, "user_ns", None) or {}
    session = user_ns.get("__session__")
    set_notebook(session if isinstance(session, str) and session.strip() else None)


def run_replay(magic: LocalMind, args: list[str]) -> None:
    from ..core import replay

    sync_notebook(magic.shell)
    if not args:
        magic._say(describe(replay.replay_state()))
        return
    if len(args) > 2 or args[0] not in replay.MODES:
        magic._say(f"usage: %localmind {USAGE}", error=True)
        return
    if args[0] == "off" and len(args) > 1:
        magic._say("`%localmind replay off` takes no file", error=True)
        return
    state = replay.set_mode(args[0], args[1] if len(args) > 1 else None)
    magic._say(describe(state))


def describe(state: Any) -> str:
    from ..core._replay_file import shown

    path, why = state.where()
    count = state.count()
    held = "no file yet" if count is None else f"{count} recorded answer{'s' * (count != 1)}"
    lines = [f"replay: {state.mode}", f"file: {shown(path)} ({why}; {held})"]
    if state.bad_env:
        lines.append(f"LOCALMIND_REPLAY={state.bad_env!r} is not a mode (record, play, off)")
    if state.mode == "play":
        lines.append("answers come from the file; a request not in it is not sent")
    elif state.mode == "record":
        lines.append("every successful answer is added to the file")
    return "\n".join(lines)
