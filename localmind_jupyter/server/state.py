"""The model layer of one Jupyter server process, built on the first request that needs it.

The server has its own loader, registry and downloads (kernels have theirs): a
download started from the REST API survives the notebooks that asked for it. Every
method here may block (config file, HTTP to backends), so handlers call them
through :meth:`ServerState.run`, on this state's own threads, never the event loop.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from tornado.ioloop import IOLoop

from ..errors import BackendUnavailable, LocalMindError
from ..secrets import get_logger, redact, register
from . import URL_PREFIX
from .admission import GenerationGate
from .errors import ApiError
from .validation import DownloadRequest, GenerateRequest, check_model_name

if TYPE_CHECKING:
    from ..backends.base import BaseBackend, ResponseStream
    from ..backends.contracts import (
        BackendInfo,
        BackendName,
        BackendsAnswer,
        BackendStateEntry,
        RegistryAnswer,
    )
    from ..core.downloads import DownloadManager, DownloadStatus
    from ..core.model_loader import ModelLoader
    from ..core.model_registry import ModelRegistry
    from .streaming import GenerationPump

log = get_logger(__name__)

T = TypeVar("T")

_DOWNLOAD_ID = re.compile(r"[0-9a-f]{1,64}")


class ServerState:
    """Loader, registry and downloads of the server process, plus the threads that use them."""

    def __init__(
        self,
        *,
        max_concurrent_downloads: int = 2,
        workers: int = 4,
        max_concurrent_generations: int = 4,
        max_queued_generations: int = 16,
        loader_factory: Callable[[], ModelLoader] | None = None,
        extra_secrets: Iterable[str | None] = (),
    ) -> None:
        self.max_concurrent_downloads = max_concurrent_downloads
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="localmind-api")
        self._loader_factory = loader_factory
        #: Admits generations: a few at once, a few in line, 503 beyond (see admission.py).
        self.generations = GenerationGate(max_concurrent_generations, max_queued_generations)
        # Building the engine may take a while (config file, imports): it has its own lock, so
        # the quick bookkeeping the event loop does under ``_lock`` never waits for it.
        self._build_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()
        self._loader: ModelLoader | None = None
        self._registry: ModelRegistry | None = None
        self._downloads: DownloadManager | None = None
        self._pumps: set[GenerationPump] = set()
        # The Jupyter token: known to every redactor of this process, its logs included.
        register(*extra_secrets)
        self._closed = False

    # --- running blocking work ---------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on this state's threads so the Jupyter event loop never waits."""
        return await IOLoop.current().run_in_executor(self.executor, partial(fn, *args))

    # --- the engine, built lazily ------------------------------------------------------------
    def loader(self) -> ModelLoader:
        """Read the config and build the backends once; a failure is retried next request."""
        with self._build_lock:
            if self._closed:
                raise ApiError(503, "the Jupyter server is shutting down")
            if self._loader is None:
                if self._loader_factory is not None:
                    loader = self._loader_factory()
                else:
                    from ..core.model_loader import ModelLoader

                    loader = ModelLoader()
                self._loader = loader  # its backends registered their keys with the redactor
            return self._loader

    def registry(self) -> ModelRegistry:
        loader = self.loader()
        with self._build_lock:
            if self._registry is None:
                from ..core.model_registry import ModelRegistry

                self._registry = ModelRegistry(loader)
            return self._registry

    def downloads(self) -> DownloadManager:
        loader = self.loader()
        with self._build_lock:
            if self._downloads is None:
                from ..core.downloads import DownloadManager

                self._downloads = DownloadManager(
                    loader.get, max_concurrent=self.max_concurrent_downloads
                )
            return self._downloads

    def backend(self, name: str) -> BaseBackend:
        """A configured, usable backend; 400 for a name the config does not have."""
        loader = self.loader()
        if name not in loader.statuses:
            configured = ", ".join(loader.statuses) or "none"
            raise ApiError(
                400,
                f"unknown backend {name!r}; configured backends: {configured} (see config.yaml)",
            )
        return loader.get(name)  # BackendUnavailable (503) when disabled or not loadable

    # --- endpoints' work ---------------------------------------------------------------------
    def available(self) -> RegistryAnswer:
        return self.registry().available()

    def backends(self) -> BackendsAnswer:
        """Status and info of every configured backend, probed now (in parallel, bounded)."""
        statuses = self.loader().probe()
        result: dict[str, BackendStateEntry] = {}
        for name, status in statuses.items():
            info: BackendInfo | BackendName = {"name": name, "type": status.type}
            if status.backend is not None:
                try:
                    info = {"name": name, "type": status.type, **status.backend.get_backend_info()}
                except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the rest
                    log.warning("get_backend_info of backend %s failed: %r", name, exc)
            result[name] = {**status.to_dict(), "info": info}
        return {"status": "ok", "backends": result}

    def start_download(self, request: DownloadRequest) -> tuple[DownloadStatus, bool]:
        """Start the download, or join the one already running; (snapshot, joined)."""
        name = request.backend
        if name is None:  # the seed's API had no backend field: as `%localmind pull NAME`
            spec = request.model.strip() if isinstance(request.model, str) else ""
            name = self.loader().download_target(spec)  # the name is checked below, by it
            if name is None:
                raise ApiError(
                    400,
                    f"no configured backend downloads models; send "
                    f'"backend": one of {", ".join(self.loader().statuses) or "none"}',
                )
        backend = self.backend(name)
        model = check_model_name(request.model, backend)
        if not backend.model_capabilities(model).downloads:  # now, not as a failed download
            verb = (
                "does not download it" if backend.capabilities.downloads else "downloads no models"
            )
            raise ApiError(
                400,
                f"backend {name!r} ({backend.type_name}) {verb}: there is nothing "
                f"to download; generate with it directly (POST {URL_PREFIX}/generate with "
                f'"backend": "{name}")',
            )
        try:
            available, reason = backend.check_availability()
        except LocalMindError as exc:
            available, reason = False, str(exc)
        if not available:  # say so now rather than as a download that failed at once
            raise BackendUnavailable(f"backend {name!r} is unavailable: {reason}")
        manager = self.downloads()
        with self._start_lock:  # "joined" must not race another request for the same model
            running = {status.id for status in manager.downloads() if not status.finished}
            download = manager.start(name, model)
        return download.snapshot(), download.id in running

    def download_list(self) -> list[dict[str, Any]]:
        if self._downloads is None:  # nothing started yet: no need to build the backends
            return []
        return [status.to_dict() for status in self._downloads.downloads()]

    def download(self, download_id: str) -> DownloadStatus:
        found = None
        if self._downloads is not None and _DOWNLOAD_ID.fullmatch(download_id):
            found = self._downloads.get(download_id)
        if found is None:
            shown = f" {download_id!r}" if _DOWNLOAD_ID.fullmatch(download_id) else ""
            raise ApiError(
                404, f"no download{shown} in this server; GET /localmind/api/downloads lists them"
            )
        return found.snapshot()

    def cancel_download(self, download_id: str) -> DownloadStatus:
        status = self.download(download_id)  # 404 first
        assert self._downloads is not None
        if not status.finished:
            self._downloads.cancel(download_id)
        return status

    def open_stream(self, request: GenerateRequest) -> ResponseStream:
        """Resolve the backend and model, then start the generation (blocks until it answers)."""
        if request.backend is not None:
            backend = self.backend(request.backend)
            model = check_model_name(request.model, backend)
        else:
            spec = check_model_name(request.model, None, field_name="model")
            backend, model = self.loader().resolve(spec)
            model = check_model_name(model, backend)
        return backend.generate_stream(request.prompt, model, **request.options)

    # --- generations in flight ---------------------------------------------------------------
    def track(self, pump: GenerationPump) -> None:
        with self._lock:
            self._pumps.add(pump)

    def untrack(self, pump: GenerationPump) -> None:
        with self._lock:
            self._pumps.discard(pump)

    # --- secrets -----------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """Mask every known secret (API keys, URL passwords, the Jupyter token) in an answer."""
        return redact(text)

    # --- shutdown ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop generations, cancel downloads, release threads and backend connections."""
        self._closed = True
        self.generations.close()
        with self._lock:
            pumps = list(self._pumps)
            self._pumps.clear()
        downloads, loader = self._downloads, self._loader
        for pump in pumps:
            pump.stop()
        if downloads is not None:
            for status in downloads.downloads():
                if not status.finished:
                    downloads.cancel(status.id)
        self.executor.shutdown(wait=False, cancel_futures=True)
        if loader is not None:
            for backend in loader.backends.values():
                close = getattr(backend, "close", None)
                if callable(close):
                    try:
                        close()
                    except Exception as exc:  # noqa: BLE001 - shutting down; keep going
                        log.debug("closing backend %s failed: %r", backend.name, exc)
