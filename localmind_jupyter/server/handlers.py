"""The REST endpoints under ``{base_url}localmind/api/``, behind Jupyter's auth.

Every method is ``@web.authenticated`` (token or login cookie; unauthenticated
requests get 403) and ``@authorized`` against the ``localmind`` resource, so a
custom Jupyter ``Authorizer`` can allow reading models but not downloading them.
``APIHandler`` applies the server's XSRF check to cookie-authenticated POST and
DELETE requests. Blocking work runs on the state's threads (see ``state.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import TracebackType
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from ..core.answer_log import answer_source
from ..errors import GenerationError, LocalMindError
from . import AUTH_RESOURCE, URL_PREFIX
from .admission import Slot
from .errors import ApiError, describe, status_for
from .state import ServerState
from .streaming import TERMINAL, GenerationPump
from .validation import parse_download, parse_generate

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"


class LocalMindHandler(APIHandler):
    """JSON in and out; every error is ``{"status": "error", "message": ...}``."""

    auth_resource = AUTH_RESOURCE
    state: ServerState

    def initialize(self, state: ServerState) -> None:
        self.state = state

    def send_json(self, payload: object, status: int = 200) -> None:
        self.set_status(status)
        self.finish(self.state.redact(json.dumps(payload, ensure_ascii=False, default=str)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        authenticated = getattr(self, "_jupyter_current_user", None) is not None
        status, message = describe(exc, status_code, authenticated=authenticated)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        if isinstance(exc, ApiError):
            for name, value in exc.headers.items():
                self.set_header(name, value)
        body = json.dumps({"status": "error", "message": message}, ensure_ascii=False)
        self.finish(self.state.redact(body))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Refusals are one log line; only real bugs get a traceback (in the log, not the reply)."""
        if isinstance(value, ApiError):
            log.info("%s %s: %s %s", self.request.method, self.request.path, value.status, value)
        elif isinstance(value, LocalMindError):
            log.warning(
                "%s %s: %s: %s",
                self.request.method,
                self.request.path,
                type(value).__name__,
                self.state.redact(str(value)),
            )
        else:
            super().log_exception(typ, value, tb)


class AvailableModelsHandler(LocalMindHandler):
    """``GET models/available``: the seed's shape, an unreachable backend listed with its reason."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.send_json(await self.state.run(self.state.available))


class BackendsHandler(LocalMindHandler):
    """``GET backends``: each configured backend's status and info, probed now."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.send_json(await self.state.run(self.state.backends))


class DownloadStartHandler(LocalMindHandler):
    """``POST models/download``: 202 with the id; the same model again joins the running one."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        request = parse_download(self.request.body)
        snapshot, joined = await self.state.run(self.state.start_download, request)
        location = f"{self.base_url.rstrip('/')}{URL_PREFIX}/downloads/{snapshot.id}"
        self.set_header("Location", location)
        self.send_json(
            {"status": "ok", "id": snapshot.id, "joined": joined, "download": snapshot.to_dict()},
            status=202,
        )


class DownloadsHandler(LocalMindHandler):
    """``GET downloads``: every download of this server, finished ones included."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        downloads = await self.state.run(self.state.download_list)
        self.send_json({"status": "ok", "downloads": downloads})


class DownloadHandler(LocalMindHandler):
    """``GET downloads/{id}`` for its status; ``DELETE`` cancels it."""

    @web.authenticated
    @authorized
    async def get(self, download_id: str) -> None:
        snapshot = await self.state.run(self.state.download, download_id)
        self.send_json({"status": "ok", "download": snapshot.to_dict()})

    @web.authenticated
    @authorized
    async def delete(self, download_id: str) -> None:
        snapshot = await self.state.run(self.state.cancel_download, download_id)
        # 202: the cancel is asynchronous (the transfer stops at its next chunk).
        self.send_json(
            {"status": "ok", "download": snapshot.to_dict()},
            status=200 if snapshot.finished else 202,
        )


class GenerateHandler(LocalMindHandler):
    """``POST generate``: NDJSON lines ``start``, ``text``…, then ``done`` (stats) or ``error``.

    Errors found before the first byte (bad options, unknown model, backend down)
    are real HTTP errors; after it, the stream ends with an ``error`` line. Closing
    the connection stops the generation at the backend.
    """

    _pump: GenerationPump | None = None
    _admission: asyncio.Future[Slot] | None = None
    _gone = False

    @web.authenticated
    @authorized("execute")  # type: ignore[untyped-decorator]  # typed as if it took the method
    async def post(self) -> None:
        request = parse_generate(self.request.body)
        slot = await self._admit()  # 503 + Retry-After when the server is full
        if slot is None:
            return
        try:
            with answer_source("rest"):  # the pump's thread logs its answer as a REST one
                pump = GenerationPump(
                    asyncio.get_running_loop(),
                    lambda: self.state.open_stream(request),
                    on_end=slot.release,
                )
            self._pump = pump
            self.state.track(pump)
            pump.start()
        except BaseException:
            slot.release()
            raise
        stream = await pump.opened  # errors here become proper HTTP statuses
        if pump.stopped:
            return
        self.set_status(200)
        self.set_header("Content-Type", NDJSON)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies: do not hold the stream back
        self._line({"type": "start", "backend": stream.backend, "model": stream.model})
        if not await self._flush():
            return
        while True:
            events = await pump.next_events()
            if not events:
                return  # stopped (client gone or server closing)
            for kind, value in events:
                self._line(_event_line(kind, value))
            if not await self._flush():
                return
            if any(kind in TERMINAL for kind, _ in events):
                break
        self.finish(set_content_type=NDJSON)

    async def _admit(self) -> Slot | None:
        """A generation slot, after waiting in line if need be; None when the client left."""
        self._admission = asyncio.ensure_future(self.state.generations.acquire())
        try:
            slot = await self._admission
        except asyncio.CancelledError:
            if self._gone:
                return None
            raise
        finally:
            self._admission = None
        if self._gone:
            slot.release()
            return None
        return slot

    def _line(self, payload: dict[str, Any]) -> None:
        self.write(self.state.redact(json.dumps(payload, ensure_ascii=False)) + "\n")

    async def _flush(self) -> bool:
        """Send what is buffered; False (and the generation stopped) when the client left."""
        try:
            await self.flush()
        except StreamClosedError:
            self._stop()
            return False
        return True

    def _stop(self) -> None:
        if self._pump is not None:
            self._pump.stop()

    def on_connection_close(self) -> None:
        self._gone = True
        if self._admission is not None:
            self._admission.cancel()  # it leaves the queue
        self._stop()
        super().on_connection_close()

    def on_finish(self) -> None:
        self._stop()
        if self._pump is not None:
            self.state.untrack(self._pump)
        super().on_finish()


def _event_line(kind: str, value: Any) -> dict[str, Any]:
    """The NDJSON object for one event of the generating thread."""
    if kind in ("text", "thinking"):
        return {"type": kind, "text": value}
    if kind == "done":
        if value is None:
            return {
                "type": "error",
                "status": "error",
                "message": "the backend ended the stream without a final response",
                "partial_text": "",
            }
        return {"type": "done", "response": value.to_dict()}
    if isinstance(value, LocalMindError):
        message = str(value)
        status = status_for(value)
    else:
        log.error("generation failed", exc_info=value)
        message = (
            f"internal error in the LocalMind server extension ({type(value).__name__}); "
            "the Jupyter server log has the details"
        )
        status = 500
    partial = value.partial_text if isinstance(value, GenerationError) else ""
    return {
        "type": "error",
        "status": "error",
        "code": status,
        "message": message,
        "partial_text": partial,
    }


class NotFoundHandler(LocalMindHandler):
    """Anything else under ``/localmind/``: a JSON 404 naming the endpoints (after auth)."""

    def _missing(self, *_args: str) -> None:
        raise ApiError(
            404,
            f"no endpoint {self.request.method} {self.request.path}; see docs/rest-api.md "
            f"(GET {URL_PREFIX}/models/available, GET {URL_PREFIX}/backends, "
            f"POST {URL_PREFIX}/models/download, GET {URL_PREFIX}/downloads, "
            f"POST {URL_PREFIX}/generate)",
        )

    @web.authenticated
    def get(self, *args: str) -> None:
        self._missing(*args)

    @web.authenticated
    def post(self, *args: str) -> None:
        self._missing(*args)

    @web.authenticated
    def put(self, *args: str) -> None:
        self._missing(*args)

    @web.authenticated
    def patch(self, *args: str) -> None:
        self._missing(*args)

    @web.authenticated
    def delete(self, *args: str) -> None:
        self._missing(*args)


def routes(state: ServerState) -> list[tuple[str, type[LocalMindHandler], dict[str, Any]]]:
    """URL patterns relative to the server's base_url (ExtensionApp prepends it)."""
    kwargs = {"state": state}
    return [
        (f"{URL_PREFIX}/models/available", AvailableModelsHandler, kwargs),
        (f"{URL_PREFIX}/models/download", DownloadStartHandler, kwargs),
        (f"{URL_PREFIX}/downloads", DownloadsHandler, kwargs),
        (f"{URL_PREFIX}/downloads/([^/]+)", DownloadHandler, kwargs),
        (f"{URL_PREFIX}/backends", BackendsHandler, kwargs),
        (f"{URL_PREFIX}/generate", GenerateHandler, kwargs),
        (r"/localmind(?:/.*)?", NotFoundHandler, kwargs),
    ]
