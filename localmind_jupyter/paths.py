"""Where LocalMind keeps its files; environment variables win so tests and CI stay sandboxed."""

from __future__ import annotations

import os
from pathlib import Path


def localmind_home() -> Path:
    """``$LOCALMIND_HOME``, else ``~/.localmind``."""
    return Path(os.environ.get("LOCALMIND_HOME") or Path.home() / ".localmind").expanduser()


def config_path() -> Path:
    """``$LOCALMIND_CONFIG``, else ``config.yaml`` in the LocalMind home."""
    explicit = os.environ.get("LOCALMIND_CONFIG")
    return Path(explicit).expanduser() if explicit else localmind_home() / "config.yaml"


def cache_dir() -> Path:
    """``$LOCALMIND_CACHE``, else ``cache/`` in the LocalMind home: converted models live here."""
    explicit = os.environ.get("LOCALMIND_CACHE")
    return Path(explicit).expanduser() if explicit else localmind_home() / "cache"


def log_path() -> Path:
    """``log.db`` in the LocalMind home: the answer log (see docs/answer-log.md)."""
    return localmind_home() / "log.db"
