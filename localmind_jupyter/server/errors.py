"""One HTTP status and one actionable message for every error a handler can meet.

The REST API answers errors as ``{"status": "error", "message": ...}``; a traceback
or an exception's repr never reaches the client (they go to the server log only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from http.client import responses

from tornado import web

from ..errors import (
    BackendUnavailable,
    ConfigError,
    DownloadError,
    GenerationError,
    LocalMindError,
    ModelNotFound,
    OptionError,
)


class ApiError(Exception):
    """A request the API refuses on purpose, with the status and the fix to tell the client."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        #: Extra response headers, e.g. ``Retry-After`` on a 503.
        self.headers = dict(headers or {})


#: Most specific first: OptionError is also a ValueError, GenerationError a LocalMindError.
_STATUS_BY_ERROR: tuple[tuple[type[LocalMindError], int], ...] = (
    (ModelNotFound, 404),
    (BackendUnavailable, 503),
    (OptionError, 400),
    (ConfigError, 400),
    (DownloadError, 400),
    # The backend's server failed (HTTP 5xx, timeout, dropped connection): a bad gateway.
    (GenerationError, 502),
)

_AUTH_HINT = (
    "authentication required: send the Jupyter server's token "
    "('Authorization: token <TOKEN>') or its login cookie"
)


def status_for(exc: LocalMindError) -> int:
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return 500


def describe(exc: BaseException | None, status: int, *, authenticated: bool) -> tuple[int, str]:
    """(status, message) for an exception that ended a request; never a traceback."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, LocalMindError):
        return status_for(exc), str(exc)
    if isinstance(exc, web.HTTPError):
        status = exc.status_code
        message = exc.log_message or ""
        if message and exc.args:
            with contextlib.suppress(TypeError, ValueError):
                message = message % exc.args
        if status == 403 and not authenticated:
            return status, _AUTH_HINT
        return status, message or exc.reason or responses.get(status, "error")
    if exc is not None:
        return 500, (
            f"internal error in the LocalMind server extension ({type(exc).__name__}); "
            "the Jupyter server log has the details"
        )
    if status == 403 and not authenticated:
        return status, _AUTH_HINT
    return status, responses.get(status, "error")
