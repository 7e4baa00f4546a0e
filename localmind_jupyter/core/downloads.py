"""Background model downloads shared by the magic, the widgets and the REST API.

Each download runs on its own thread so the kernel (or the Jupyter server's event
loop) is never blocked; a second request for the same model joins the running
one, unless that one is being cancelled: then it is a new download, which waits for
the cancelled one to stop before it transfers. At most ``max_concurrent`` transfer
at once and the rest wait in a queue. Subscribers get throttled progress, every
phase change and the final state; the manager's own listeners hear of every new
download, so every open panel shows downloads started anywhere in the process.
Nothing grows for the life of the process: the history keeps the running downloads
and the last ``max_history`` finished ones, and every listener list is bounded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..backends.base import BaseBackend, DownloadProgress
from ..errors import LocalMindError
from .listeners import Listeners

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED})


@dataclass(frozen=True)
class DownloadStatus:
    """A snapshot of one download, safe to hand to any thread or serialise as JSON."""

    id: str
    backend: str
    model: str
    state: str
    status: str
    #: The backend's step (``downloading``, ``verifying``…): a new one is worth a redraw.
    phase: str
    completed: int
    total: int | None
    speed: float | None
    eta: float | None
    error: str | None
    started_at: float
    finished_at: float | None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return 1.0 if self.state == DONE else None
        return min(1.0, self.completed / self.total)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": self.fraction}


Subscriber = Callable[[DownloadStatus], None]
StartListener = Callable[["Download"], None]

#: Watchers one download or one manager keeps; more drops the oldest (see listeners.py).
MAX_LISTENERS = 64


class Download:
    """One transfer and everyone watching it."""

    def __init__(
        self,
        manager: DownloadManager,
        backend: BaseBackend,
        model: str,
        after: Download | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.backend = backend
        self.model = model
        self.cancel_event = threading.Event()
        self._manager = manager
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._subscribers: Listeners[DownloadStatus] = Listeners(
            MAX_LISTENERS, f"watchers of download {self.id}"
        )
        #: A cancelled download of the same model still stopping: this one waits for it.
        self._after = after
        self._window: deque[tuple[float, int]] = deque()
        self._last_emit = 0.0
        self._state = QUEUED
        self._status = "queued"
        self._phase = "queued"
        self._completed = 0
        self._total: int | None = None
        self._error: str | None = None
        self._started_at = time.time()
        self._finished_at: float | None = None

    def __repr__(self) -> str:
        return f"<Download {self.id} {self.backend.name}:{self.model} {self._state}>"

    # --- for callers ------------------------------------------------------------------------
    def snapshot(self) -> DownloadStatus:
        with self._lock:
            speed = self._speed()
            remaining = None if self._total is None else max(0, self._total - self._completed)
            eta = remaining / speed if speed and remaining is not None else None
            return DownloadStatus(
                id=self.id,
                backend=self.backend.name,
                model=self.model,
                state=self._state,
                status=self._status,
                phase=self._phase,
                completed=self._completed,
                total=self._total,
                speed=speed,
                eta=eta,
                error=self._error,
                started_at=self._started_at,
                finished_at=self._finished_at,
            )

    def subscribe(self, callback: Subscriber) -> None:
        """Watch this download; the callback gets the current state at once.

        A finished download sends no more events, so its watchers are not kept.
        """
        if not self._finished.is_set():
            self._subscribers.add(callback)
            if self._finished.is_set():  # it ended meanwhile, after letting its watchers go
                self._subscribers.remove(callback)
        _call(callback, self.snapshot())

    def unsubscribe(self, callback: Subscriber) -> None:
        self._subscribers.remove(callback)

    @property
    def watchers(self) -> int:
        """How many callbacks watch this download now (none once it has finished)."""
        return len(self._subscribers)

    @property
    def cancelling(self) -> bool:
        """Cancel was asked and the transfer has not stopped yet."""
        return self.cancel_event.is_set() and not self._finished.is_set()

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> DownloadStatus:
        self._finished.wait(timeout)
        return self.snapshot()

    # --- for the worker ---------------------------------------------------------------------
    def _speed(self) -> float | None:
        if len(self._window) < 2:
            return None
        (t0, c0), (t1, c1) = self._window[0], self._window[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None

    def _on_progress(self, event: DownloadProgress) -> None:
        now = time.monotonic()
        with self._lock:
            phase_changed = event.phase != self._phase
            self._status, self._phase = event.status, event.phase
            self._completed = max(self._completed, event.completed)  # never backwards
            if event.total is not None:
                self._total = max(event.total, self._completed)
            self._window.append((now, self._completed))
            while len(self._window) > 2 and now - self._window[0][0] > self._manager.speed_window:
                self._window.popleft()
            due = now - self._last_emit >= self._manager.throttle
            if not (phase_changed or due):
                return
            self._last_emit = now
        self._emit()

    def _set_status(self, status: str) -> None:
        with self._lock:
            self._status = self._phase = status
        self._emit()

    def _set_state(
        self, state: str, *, error: str | None = None, status: str | None = None
    ) -> None:
        with self._lock:
            self._state = state
            if status is not None:
                self._status = self._phase = status
            if error is not None:
                self._error = error
            if state == DONE and self._total is not None:
                self._completed = self._total
            if state in FINAL_STATES:
                self._finished_at = time.time()
            self._last_emit = time.monotonic()
        self._emit()
        if state in FINAL_STATES:
            self._finished.set()
            self._subscribers.clear()  # no more events: let the watchers go

    def _emit(self) -> None:
        self._subscribers.emit(self.snapshot())

    def _run(self) -> None:
        manager = self._manager
        try:
            # A cancelled transfer of the same model must stop before this one starts,
            # or both would write the same files.
            if self._after is not None:
                self._set_status("waiting for the cancelled download to stop")
                while not self._after._finished.wait(timeout=0.05):
                    if self.cancel_event.is_set():
                        self._set_state(CANCELLED, status="cancelled while queued")
                        return
                self._after = None
            # Wait for a free slot, but notice a cancel while still queued.
            while not manager._slots.acquire(timeout=0.05):
                if self.cancel_event.is_set():
                    self._set_state(CANCELLED, status="cancelled while queued")
                    return
            try:
                self._transfer()
            finally:
                manager._slots.release()
        finally:
            manager._forget(self)

    def _transfer(self) -> None:
        if self.cancel_event.is_set():
            self._set_state(CANCELLED, status="cancelled while queued")
            return
        if not self.backend.model_capabilities(self.model).downloads:  # it is never asked
            error = (
                f"backend {self.backend.name!r} downloads no models: there is nothing to download"
            )
            self._set_state(FAILED, error=error, status="failed")
            return
        self._set_state(RUNNING, status="starting")
        try:
            self.backend.download_model(self.model, self._on_progress, self.cancel_event)
        except LocalMindError as exc:
            if self.cancel_event.is_set():
                self._set_state(CANCELLED, status="cancelled")
            else:
                self._set_state(FAILED, error=str(exc), status="failed")
        except Exception as exc:  # a download thread must always end in a state
            log.exception("download of %s:%s crashed", self.backend.name, self.model)
            self._set_state(FAILED, error=f"{type(exc).__name__}: {exc}", status="failed")
        else:
            if self.cancel_event.is_set():
                self._set_state(CANCELLED, status="cancelled")
            else:
                self._set_state(DONE, status="done")


def _call(callback: Subscriber, snapshot: DownloadStatus) -> None:
    try:
        callback(snapshot)
    except Exception:  # a broken watcher must not break the download
        log.exception("download subscriber %r failed", callback)


class DownloadManager:
    """All downloads of one process; thread-safe; nothing here blocks the caller."""

    def __init__(
        self,
        get_backend: Callable[[str], BaseBackend],
        *,
        max_concurrent: int = 2,
        throttle: float = 0.1,
        speed_window: float = 5.0,
        max_history: int = 50,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if max_history < 0:
            raise ValueError("max_history must be 0 or more")
        self.get_backend = get_backend
        self.max_concurrent = max_concurrent
        self.throttle = throttle
        self.speed_window = speed_window
        #: Finished downloads remembered (running ones always are); older ones are forgotten.
        self.max_history = max_history
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str], Download] = {}
        self._all: dict[str, Download] = {}
        self._finished_ids: deque[str] = deque()
        self._listeners: Listeners[Download] = Listeners(
            MAX_LISTENERS, "listeners of new downloads"
        )

    def subscribe(self, listener: StartListener) -> None:
        """Call ``listener(download)`` for every download started from now on, by anyone.

        It runs on the thread that called :meth:`start`, before the transfer begins;
        it is not called when a request joins a running download.
        """
        self._listeners.add(listener)

    def unsubscribe(self, listener: StartListener) -> None:
        self._listeners.remove(listener)

    @property
    def listeners(self) -> int:
        """How many callbacks hear of new downloads (each open downloads panel is one)."""
        return len(self._listeners)

    def start(self, backend: str, model: str, subscriber: Subscriber | None = None) -> Download:
        """Start (or join) the download of ``model`` from ``backend``; returns at once.

        A download being cancelled is not joined: this starts a new one, which waits
        for the cancelled one to stop. Raises only for a backend that cannot be used;
        download failures arrive as the ``failed`` state with the error message.
        """
        backend_obj = self.get_backend(backend)
        key = (backend_obj.name, model)
        with self._lock:
            download = self._active.get(key)
            joined = download is not None and not download.cancel_event.is_set()
            if not joined:
                download = Download(self, backend_obj, model, after=download)
                self._active[key] = download
                self._all[download.id] = download
        assert download is not None
        if not joined:
            self._listeners.emit(download)
        if subscriber is not None:
            download.subscribe(subscriber)
        if not joined:
            thread = threading.Thread(
                target=download._run, name=f"localmind-download-{download.id}", daemon=True
            )
            thread.start()
        return download

    def get(self, download_id: str) -> Download | None:
        with self._lock:
            return self._all.get(download_id)

    def downloads(self) -> list[DownloadStatus]:
        """Every download of this process, newest last, finished ones included."""
        with self._lock:
            items = list(self._all.values())
        return [d.snapshot() for d in items]

    def cancel(self, download_id: str) -> bool:
        download = self.get(download_id)
        if download is None:
            return False
        download.cancel()
        return True

    def _forget(self, download: Download) -> None:
        """A download ended: no longer joinable; the oldest finished ones leave the history."""
        with self._lock:
            key = (download.backend.name, download.model)
            if self._active.get(key) is download:
                del self._active[key]
            self._finished_ids.append(download.id)
            while len(self._finished_ids) > self.max_history:
                self._all.pop(self._finished_ids.popleft(), None)
