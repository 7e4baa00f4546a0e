"""A meta path finder that makes ``llama_cpp`` look uninstalled, as with no wheel:
``import llama_cpp`` fails and ``importlib.util.find_spec("llama_cpp")`` raises
ModuleNotFoundError. Put first on ``sys.meta_path`` (tests/hide_llama_cpp does it in a kernel)."""

from __future__ import annotations

from typing import Any


class HideLlamaCpp:
    """Refuses ``llama_cpp`` and its submodules before any other finder looks."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "llama_cpp" or name.startswith("llama_cpp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
