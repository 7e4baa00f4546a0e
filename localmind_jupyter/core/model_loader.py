"""Builds the configured backends through the entry points and probes them.

An unavailable backend stays listed with its reason: the magic, the widgets and
the REST API all need to say *why* a backend cannot be used.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

from ..backends import backend_class
from ..backends.base import BaseBackend
from ..config import LocalMindConfig, load_config
from ..errors import BackendUnavailable, ConfigError, LocalMindError, ModelNotFound
from ..secrets import redact, register_config

if TYPE_CHECKING:
    from ..backends.contracts import BackendState
    from .answer_log import AnswerLog

_TIMEOUT_SETTINGS = {"connect_timeout": "connect", "read_timeout": "read", "probe_timeout": "probe"}
#: One thread at a time imports what the probes need (see ``_import_probe_modules``).
_PROBE_IMPORTS = threading.Lock()


@dataclass
class BackendStatus:
    """One configured backend: built or not, reachable or not, and why."""

    name: str
    type: str
    enabled: bool
    backend: BaseBackend | None = None
    #: None until probed.
    available: bool | None = None
    reason: str | None = None

    def to_dict(self) -> BackendState:
        return {
            "name": self.name,
            "type": self.type,
            "enabled": self.enabled,
            "available": self.available,
            "reason": self.reason,
        }


def build_backend(config: LocalMindConfig, name: str) -> BackendStatus:
    """Build one backend; a bad setting or missing plugin becomes the status's reason."""
    spec = config.backends[name]
    status = BackendStatus(name=name, type=spec.type, enabled=spec.enabled)
    if not spec.enabled:
        status.available = False
        status.reason = config.off_reasons.get(name) or (
            f"disabled in the config (set backends.{name}.enabled: true)"
        )
        return status
    try:
        try:
            cls = backend_class(spec.type)
        except ConfigError as exc:
            raise config.error(f"backends.{name}.type: {exc}", f"backends.{name}.type") from None
        defaults = {s: getattr(config.timeouts, t) for s, t in _TIMEOUT_SETTINGS.items()}
        status.backend = cls(config.resolved_settings(name), name=name, defaults=defaults)
    except ConfigError as exc:
        if exc.path is None and exc.key is not None and config.source is not None:
            exc = config.error(str(exc), exc.key)
        status.available = False
        status.reason = str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
        status.available = False
        status.reason = redact(f"backend type {spec.type!r} could not be loaded: {exc}")
    return status


class ModelLoader:
    """The configured backends of one process (a kernel, the Jupyter server)."""

    def __init__(self, config: LocalMindConfig | None = None) -> None:
        self.config = config if config is not None else load_config()
        register_config(self.config)  # disabled backends' keys too: a reason may quote them
        self.statuses: dict[str, BackendStatus] = {
            name: build_backend(self.config, name) for name in self.config.backends
        }
        from .answer_log import answer_log_for

        #: Where every answer goes (None with ``log: false``); the file is made on the first.
        self.answer_log: AnswerLog | None = answer_log_for(self.config)
        for status in self.statuses.values():
            self._attach(status.backend)

    def _attach(self, backend: BaseBackend | None) -> None:
        """Point the backend's ``answer_sink`` at the log (with ``log: false`` in replay's
        record mode at replay) and its ``answer_provider`` at replay, unless something else
        holds them."""
        if backend is None:
            return
        from . import replay

        if backend.answer_provider is None:
            backend.answer_provider = replay.provide
        if backend.answer_sink is not None:
            return
        if self.answer_log is not None:
            backend.answer_sink = self.answer_log.record  # which tells replay itself
        elif replay.replay_state().mode == "record":
            backend.answer_sink = replay.record_answer

    def __repr__(self) -> str:
        return f"<ModelLoader backends={list(self.statuses)}>"

    @property
    def backends(self) -> dict[str, BaseBackend]:
        """The enabled backends that could be built (reachable or not)."""
        return {n: s.backend for n, s in self.statuses.items() if s.backend is not None}

    def get(self, name: str) -> BaseBackend:
        status = self.statuses.get(name)
        if status is None:
            raise BackendUnavailable(
                f"no backend named {name!r}; configured backends: {', '.join(self.statuses)}"
            )
        if status.backend is None:
            raise BackendUnavailable(f"backend {name!r} cannot be used: {status.reason}")
        self._attach(status.backend)  # also one put into ``statuses`` after construction
        return status.backend

    def resolve(self, spec: str | None = None) -> tuple[BaseBackend, str]:
        """``backend:model``, a bare installed model name, or the default -> backend and model.

        A bare name is looked up among the installed models of the enabled backends;
        one match is used, several or none give a message listing what to write.
        """
        spec = (spec or self.config.effective_default_model()).strip()
        name, sep, model = spec.partition(":")
        if sep and name in self.statuses:
            if not model:
                raise ModelNotFound(f"no model after '{name}:'; write {name}:MODEL")
            return self.get(name), model
        matches, installed = self._find_installed(spec)
        if len(matches) == 1:
            backend_name, model = matches[0]
            return self.get(backend_name), model
        if matches:
            options = ", ".join(f"{b}:{m}" for b, m in matches)
            raise ModelNotFound(
                f"'{spec}' is installed in several backends; write one of {options}"
            )
        close = difflib.get_close_matches(spec, [m for _, m in installed], n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        example = next(iter(self.statuses), "NAME")
        raise ModelNotFound(
            f"no enabled backend has a model named '{spec}'.{hint} Write backend:model with "
            f"backend one of {', '.join(self.statuses)} (e.g. {example}:MODEL); "
            "`%localmind models` lists what is installed"
        )

    def download_target(self, model: str) -> str | None:
        """The backend a bare model name is downloaded with; None when no backend downloads.

        The first built backend that downloads and claims the name (``claims_model_name``:
        a Hub id, a ``name:tag``), else the first whose name grammar takes it.
        """
        candidates = [
            (name, status.backend)
            for name, status in self.statuses.items()
            if status.backend is not None and status.backend.capabilities.downloads
        ]
        for name, backend in candidates:
            if backend.claims_model_name(model):
                return name
        for name, backend in candidates:
            try:
                backend.validate_model_name(model)
            except LocalMindError:
                continue
            return name
        # No grammar takes it: the first one says why (its validate_model_name message).
        return candidates[0][0] if candidates else None

    def _find_installed(self, spec: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(matches, everything installed) across the backends that could be built."""
        matches: list[tuple[str, str]] = []
        installed: list[tuple[str, str]] = []
        for name, status in self.statuses.items():
            if status.backend is None or status.available is False:
                continue
            try:
                models = status.backend.list_models()
            except LocalMindError:
                continue
            wanted = status.backend.model_key(spec)
            for model in models:
                installed.append((name, model))
                if status.backend.model_key(model) == wanted:
                    matches.append((name, model))
        return matches, installed

    def probe(self, timeout: float | None = None) -> dict[str, BackendStatus]:
        """Check every built backend at once; a backend that does not answer in time is down."""
        from concurrent.futures import ThreadPoolExecutor, wait

        timeout = self.config.timeouts.probe if timeout is None else timeout
        targets = {n: s for n, s in self.statuses.items() if s.backend is not None}
        if not targets:
            return self.statuses
        _import_probe_modules(s.backend for s in targets.values())
        pool = ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="localmind-probe")
        futures = {pool.submit(_check, s.backend): s for s in targets.values()}
        done, _ = wait(futures, timeout=timeout + 0.5)
        for future, status in futures.items():
            if future in done:
                status.available, status.reason = future.result()
            else:
                status.available = False
                status.reason = f"no answer within {timeout:g} s"
        pool.shutdown(wait=False, cancel_futures=True)
        return self.statuses


def _import_probe_modules(backends: Iterable[BaseBackend | None]) -> None:
    """Import the packages the probes use, one by one, before the probes run in parallel.

    Two threads importing httpx, openai or anthropic for the first time at once can
    deadlock on the import locks, and Python then hands one of them the half-initialised
    module ("partially initialized module 'httpx' has no attribute 'Response'"). The
    import time also no longer counts against the probe timeout.
    """
    wanted = dict.fromkeys(m for b in backends if b is not None for m in b.probe_modules)
    with _PROBE_IMPORTS:
        for module in wanted:
            try:
                import_module(module)
            except Exception:  # noqa: BLE001 - the probe itself reports a missing package
                continue


def _check(backend: BaseBackend | None) -> tuple[bool, str | None]:
    assert backend is not None
    try:
        available, reason = backend.check_availability()
        return available, redact(reason) if reason else None  # a plugin's reason too
    except LocalMindError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - report, don't crash the probe
        return False, redact(f"availability check failed: {type(exc).__name__}: {exc}")
