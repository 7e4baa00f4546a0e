"""First on a kernel's ``PYTHONPATH`` (the repository after it): llama_cpp looks uninstalled."""

from __future__ import annotations

import sys

from tests.llama_cpp_hider import HideLlamaCpp

sys.meta_path.insert(0, HideLlamaCpp())
