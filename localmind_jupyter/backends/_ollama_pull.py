"""Ollama's ``/api/pull``: NDJSON progress events turned into one overall progress."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from ..errors import DownloadError
from . import _ollama_wire as wire
from ._http_cancel import close_on_cancel
from .base import DownloadProgress, ProgressCallback

if TYPE_CHECKING:
    from .ollama import OllamaBackend


def pull(
    backend: OllamaBackend,
    model: str,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> None:
    """``/api/pull`` turned into overall progress across layers; ``cancel`` closes it."""
    import httpx

    pulled = wire.PullProgress()
    response = backend._send("POST", "/api/pull", {"model": model, "stream": True}, stream=True)
    if response.status_code >= 400:
        response.read()
        if wire.no_such_route(response):
            raise DownloadError(str(backend._partial_api("/api/pull")))
        raise DownloadError(f"Ollama refused to pull '{model}': {wire.error_text(response)}")
    finished = threading.Event()
    if cancel is not None:
        # A stalled pull sends no line to notice the cancel on: close it from here.
        threading.Thread(
            target=close_on_cancel,
            args=(response, cancel, finished),
            name="localmind-ollama-pull-cancel",
            daemon=True,
        ).start()
    try:
        for line in response.iter_lines():
            if cancel is not None and cancel.is_set():
                return
            if not line.strip():
                continue
            event: wire.PullEvent = json.loads(line)
            if "error" in event:
                message = event["error"]
                if "file does not exist" in message:
                    raise DownloadError(
                        f"'{model}' is not in the Ollama library ({message}) — check the "
                        "name and tag at https://ollama.com/search"
                    )
                raise DownloadError(f"Ollama could not pull '{model}': {message}")
            pulled.update(event)
            if progress is not None:
                progress(
                    DownloadProgress(
                        model,
                        backend.name,
                        pulled.status,
                        pulled.completed,
                        pulled.total,
                        pulled.phase,
                    )
                )
    except (httpx.HTTPError, httpx.StreamError) as exc:
        if cancel is not None and cancel.is_set():
            return
        raise DownloadError(
            f"the connection to Ollama dropped while pulling '{model}' ({wire.short(exc)}); "
            "pull again to resume"
        ) from None
    finally:
        finished.set()
        response.close()
    if pulled.status != "success":
        raise DownloadError(f"the pull of '{model}' ended before Ollama reported success")
