"""The errors LocalMind raises.

Every message says what happened and what to do about it, because the people
reading them are in a notebook, not a debugger.
"""

from __future__ import annotations

from .secrets import redact

__all__ = [
    "BackendUnavailable",
    "ConfigError",
    "DownloadError",
    "GenerationError",
    "LocalMindError",
    "ModelNameError",
    "ModelNotFound",
    "OptionError",
]


class LocalMindError(Exception):
    """Base of every error LocalMind raises on purpose.

    Its message goes through the redactor: whoever prints it (a traceback, a log, a REST
    answer) never shows a key or a URL password, even one quoted from an SDK's error.

    ``retryable``: the same request may succeed if sent again later (a dropped connection,
    HTTP 429, a 5xx) and no part of an answer arrived; ``retry_after``: the seconds the
    server asked to wait (``Retry-After``), when it said.
    """

    retryable: bool = False
    retry_after: float | None = None

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class BackendUnavailable(LocalMindError):
    """The backend cannot be reached or used right now (server down, package missing)."""


class ModelNotFound(LocalMindError):
    """The backend does not know the model, or it is not installed there."""


class GenerationError(LocalMindError):
    """Generation failed; ``partial_text`` keeps what arrived before the failure."""

    def __init__(self, message: str, partial_text: str = "") -> None:
        super().__init__(message)
        self.partial_text = partial_text


class OptionError(LocalMindError, ValueError):
    """A generation option is unknown, has a bad value, or the backend cannot honour it."""


class ModelNameError(OptionError):
    """A model name the backend could never know (bad characters, wrong shape)."""


class DownloadError(LocalMindError):
    """A model download failed or was refused."""


class ConfigError(LocalMindError):
    """The configuration file or a backend's settings are invalid."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        where = ""
        if path:
            where = f"{path}, line {line}" if line else str(path)
        full = f"{where}: {message}" if where else message
        super().__init__(full)
        self.path = path
        self.line = line
        self.key = key
