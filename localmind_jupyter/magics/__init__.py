"""The ``%%localmind`` cell magic and ``%localmind`` line commands for IPython and Jupyter."""

from __future__ import annotations

from typing import Any

_EXTENSION_ATTR = "_localmind_magics"


def load_ipython_extension(ipython: Any) -> None:  # Any: IPython mistypes .configurables
    """``%load_ext localmind_jupyter``: register the magics; nothing heavy is imported."""
    if getattr(ipython, _EXTENSION_ATTR, None) is not None:
        return  # loaded twice: keep the first (its session and history)
    from .magic import LocalMind

    magics = LocalMind(shell=ipython)
    ipython.register_magics(magics)
    ipython.events.register("post_run_cell", magics.post_run_cell)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
    setattr(ipython, _EXTENSION_ATTR, magics)
    from .replay_cmd import sync_notebook

    sync_notebook(ipython)  # the per-notebook recording, also for LOCALMIND_REPLAY=play


def unload_ipython_extension(ipython: Any) -> None:
    magics = getattr(ipython, _EXTENSION_ATTR, None)
    if magics is None:
        return
    ipython.events.unregister("post_run_cell", magics.post_run_cell)
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)
    ipython.magics_manager.magics["line"].pop("localmind", None)
    ipython.magics_manager.magics["cell"].pop("localmind", None)
    setattr(ipython, _EXTENSION_ATTR, None)
    from ..session import reset_session

    reset_session()
