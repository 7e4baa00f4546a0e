"""Ollama through its HTTP API, with httpx (imported on the first request, not at start-up).

Follows Ollama's documented behaviour: NDJSON streams, ``{"error": ...}`` bodies,
in-band error lines after streaming started, ``keep_alive`` to load and unload.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.images import ImageLimits
from ..errors import BackendUnavailable, GenerationError, ModelNotFound, OptionError
from . import _ollama_names, _vision
from . import _ollama_wire as wire
from ._http_cancel import CancelResponse
from ._ollama_host import DEFAULT_BASE_URL, DEFAULT_PORT, normalize_host, split_credentials
from ._ollama_options import check_options, check_structured
from ._retry_hints import mark, retry_after
from .base import (
    BackendSettings,
    BaseBackend,
    Delta,
    ProgressCallback,
    Started,
    Thinking,
    Usage,
)
from .capabilities import Capabilities

if TYPE_CHECKING:
    import httpx

    from ._request import GenerationRequest
    from .contracts import BackendInfo, InstalledModel

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PORT",
    "OllamaBackend",
    "OllamaSettings",
    "normalize_host",
    "split_credentials",
]


@dataclass(frozen=True)
class OllamaSettings(BackendSettings):
    #: Where Ollama listens; else ``OLLAMA_HOST``, else http://127.0.0.1:11434.
    #: Not in the repr: it may carry ``user:password@`` for an Ollama behind a proxy.
    base_url: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    #: Longest silence between two streamed lines (a cold model load can take a while).
    read_timeout: float = 300.0
    probe_timeout: float = 2.0
    #: How long Ollama keeps the model loaded after a request (``"5m"``, seconds, ``-1``).
    keep_alive: str | float | None = None
    #: Extra HTTP headers, e.g. ``Authorization`` for an Ollama behind a proxy.
    headers: dict[str, str] = field(default_factory=dict, repr=False)


class OllamaBackend(BaseBackend):
    type_name = "ollama"
    #: A server answers several requests at once (a batch sends this many).
    default_concurrency = 4
    display_name = "Ollama"
    Settings = OllamaSettings
    extra_options = frozenset({"keep_alive", "format", "num_ctx"})
    probe_modules = ("httpx", "httpcore")
    #: ``format`` constrains the output to a schema; ``think`` and ``message.thinking``
    #: carry the trace (a model that cannot think is refused by Ollama, see ``_raise_for_status``).
    #: Images go as ``images`` on the message, to the models ``/api/show`` lists as ``vision``.
    capabilities = Capabilities(
        downloads=True, streaming=True, seed=True, json_schema=True, thinking=True, images=True
    )
    default_image_limits = ImageLimits(max_edge=2048)
    settings: OllamaSettings

    def validate_model_name(self, name: str) -> str:
        return _ollama_names.validate(name, self.type_name)

    def model_key(self, name: str) -> str:
        return _ollama_names.key(name)

    def claims_model_name(self, name: str) -> bool:
        return "/" not in name  # owner/name goes to a Hub backend first, when one is configured

    def setup(self) -> None:
        from ..errors import ConfigError
        from ..secrets import check_url_credentials, register_url

        configured = self.settings.base_url or os.environ.get("OLLAMA_HOST") or DEFAULT_BASE_URL
        register_url(configured)  # OLLAMA_HOST may carry user:password@ too
        key = f"backends.{self.name}.settings.base_url"
        problem = check_url_credentials(configured, key)
        if problem:
            raise ConfigError(problem, key=key)
        configured, self._auth = split_credentials(configured)
        self.base_url = normalize_host(configured)
        self._client: httpx.Client | None = None
        self._version: str | None = None
        #: model key -> whether ``/api/show`` lists ``vision`` (asked once per model).
        self._vision: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"<OllamaBackend {self.name!r} at {self.base_url}>"

    # --- HTTP plumbing ----------------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            from ._retry import resending

            with self._lock:
                if self._client is None:
                    self._client = resending(httpx.Client)(
                        base_url=self.base_url,
                        timeout=httpx.Timeout(
                            self.settings.read_timeout, connect=self.settings.connect_timeout
                        ),
                        headers={"Accept": "application/json", **self.settings.headers},
                        auth=self._auth,
                    )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _not_running(self, exc: Exception | None = None) -> BackendUnavailable:
        detail = f" ({wire.short(exc)})" if exc else ""
        return BackendUnavailable(
            f"Ollama is not running at {self.base_url}{detail} — start it with `ollama serve` "
            f"or set backends.{self.name}.settings.base_url"
        )

    def _send(
        self,
        method: str,
        path: str,
        body: wire.ChatBody | wire.PullBody | wire.ShowBody | None = None,
        *,
        stream: bool = False,
    ) -> httpx.Response:
        """Send a request; transport failures become our errors, HTTP errors are left to callers."""
        import httpx

        request = self.client.build_request(method, path, json=body)
        try:
            return self.client.send(request, stream=stream)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise mark(self._not_running(exc)) from None
        except httpx.TimeoutException:
            error = GenerationError(
                f"Ollama at {self.base_url} did not answer within {self.settings.read_timeout:g} s "
                f"— a large model may still be loading; raise "
                f"backends.{self.name}.settings.read_timeout"
            )
            raise mark(error) from None
        except httpx.HTTPError as exc:  # reset, dropped before an answer: worth a retry
            why = wire.short(exc)
            raise mark(
                BackendUnavailable(f"cannot talk to Ollama at {self.base_url} ({why})")
            ) from None

    def _raise_for_status(self, response: httpx.Response, model: str | None = None) -> None:
        if response.status_code < 400:
            return
        if not response.is_closed:
            response.read()
            response.close()
        if wire.no_such_route(response):
            raise self._partial_api(response.request.url.path)
        message = wire.error_text(response)
        status = response.status_code
        if status == 404 and model is not None and "not found" in message:
            raise ModelNotFound(
                f"model '{model}' is not installed in Ollama — pull it with "
                f"`%localmind pull {model}`{self._installed_hint()}"
            )
        if status == 400 and "invalid model name" in message:
            raise ModelNotFound(
                f"'{model}' is not a valid Ollama model name (expected name or name:tag, "
                "e.g. llama3.2:1b)"
            )
        if status == 400 and "does not support thinking" in message:
            raise OptionError(
                f"the Ollama model '{model}' does not support thinking — leave think out "
                "(or pass think=False), or pick a thinking model such as qwen3 or "
                "deepseek-r1"
            )
        if "must be of type" in message:
            raise OptionError(f"Ollama rejected an option: {message}")
        if model is not None and "missing data required for image input" in message:
            with self._lock:  # the server knows better than the catalog: refuse early next time
                self._vision[self.model_key(model)] = False
            raise _vision.cannot_see(self, model)
        if "image: unknown format" in message or "illegal base64" in message:
            raise GenerationError(
                f"Ollama could not read an image of this request (HTTP {status}): {message} — "
                "send it as PNG or JPEG"
            )
        error = GenerationError(f"Ollama answered HTTP {status}: {message}")
        raise mark(error, wire.transient_status(status, message), retry_after(response.headers))

    def _partial_api(self, path: str) -> BackendUnavailable:
        return BackendUnavailable(
            f"the server at {self.base_url} speaks only part of the Ollama API (no {path}) — it "
            "looks like an OpenAI-compatible shim; use `type: openai` with "
            f"`base_url: {self.base_url}/v1`"
        )

    def _installed_hint(self) -> str:
        try:
            names = self.list_models()
        except Exception:  # noqa: BLE001 - only a hint
            return ""
        if not names:
            return " (no models are installed yet)"
        return f" (installed: {', '.join(names[:8])}{' …' if len(names) > 8 else ''})"

    # --- contract ---------------------------------------------------------------------------
    def check_availability(self) -> tuple[bool, str | None]:
        import httpx

        try:
            response = self.client.get("/api/version", timeout=self.settings.probe_timeout)
        except httpx.ConnectError as exc:
            why = "connection refused" if "refused" in str(exc).lower() else wire.short(exc)
            return False, f"{why} at {self.base_url} — start Ollama with `ollama serve`"
        except httpx.TimeoutException:
            return False, f"no answer from {self.base_url} within {self.settings.probe_timeout:g} s"
        except httpx.HTTPError as exc:
            return False, f"cannot reach {self.base_url} ({wire.short(exc)})"
        try:
            answer: wire.VersionAnswer = response.json()
            self._version = str(answer["version"])
        except (ValueError, KeyError, TypeError):
            return False, (
                f"{self.base_url} answered HTTP {response.status_code} but is not an Ollama server"
            )
        try:  # Ollama's own heartbeat; shims that answer /api/version lack it and /api/chat
            heartbeat = self.client.head("/", timeout=self.settings.probe_timeout)
        except httpx.HTTPError as exc:
            return False, f"cannot reach {self.base_url} ({wire.short(exc)})"
        if wire.no_such_route(heartbeat):
            return False, str(self._partial_api("/api/chat"))
        return True, None

    def list_models(self) -> list[str]:
        return [m["name"] for m in self.installed_model_details()]

    def installed_model_details(self) -> list[InstalledModel]:
        """``/api/tags`` entries: name, size, details (family, parameter size, quantisation)."""
        response = self._send("GET", "/api/tags")
        self._raise_for_status(response)
        answer: wire.TagsAnswer = response.json()
        return list(answer.get("models") or [])

    def load_model(self, model: str) -> None:
        body = wire.load_body(model, self.settings.keep_alive)
        self._raise_for_status(self._send("POST", "/api/chat", body), model)

    def unload_model(self, model: str) -> None:
        self._raise_for_status(self._send("POST", "/api/chat", wire.load_body(model, 0)), model)

    def get_backend_info(self) -> BackendInfo:
        return {**super().get_backend_info(), "base_url": self.base_url, "version": self._version}

    def model_capabilities(self, model: str) -> Capabilities:
        """Images only for a model that sees: ``/api/show`` said so (asked when a request
        carries images), else the catalog's ``vision`` tag; unknown models are not refused."""
        with self._lock:
            sees = self._vision.get(self.model_key(model))
        if sees is None:
            sees = _vision.ollama_catalog_sees(model, self.model_key)
        if sees is False:
            return dataclasses.replace(self.capabilities, images=False)
        return self.capabilities

    def _learn_vision(self, model: str) -> None:
        """Ask ``/api/show`` once per model whether it lists ``vision``. An answer without
        ``capabilities`` (Ollama before 0.6.4) or an error leaves it to the catalog; a model
        that is not installed is reported by the chat request itself."""
        key = self.model_key(model)
        with self._lock:
            if key in self._vision:
                return
        response = self._send("POST", "/api/show", {"model": model})
        if response.status_code != 200:
            return
        try:
            answer: wire.ShowAnswer = response.json()
        except ValueError:
            return
        listed = answer.get("capabilities") if isinstance(answer, dict) else None
        if isinstance(listed, list):
            with self._lock:
                self._vision[key] = "vision" in listed

    def build_request(self, prompt: str, model: str, **kwargs: Any) -> GenerationRequest:
        """The common options, then Ollama's own (keep_alive, format, num_ctx) before any
        request; ``format`` clashes with ``schema`` / ``json_mode``, which set it too. With
        images, ``/api/show`` is asked first whether the model sees (once per model)."""
        if _vision.carries_images(kwargs):
            self._learn_vision(model)
        request = super().build_request(prompt, model, **kwargs)
        check_options(request.extra)
        check_structured(request)
        return request

    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        """Message pieces from the NDJSON body; the ``finally`` closes the connection."""
        import httpx

        body = wire.chat_body(request, self.settings.keep_alive, self.image_limits)
        response = self._send("POST", "/api/chat", body, stream=True)
        self._raise_for_status(response, request.model)
        loads = json.JSONDecoder().decode  # str lines: no per-line encoding detection
        final: wire.ChatChunk | None = None
        buffer = b""
        cancel = CancelResponse(response)
        try:
            yield Started(cancel=cancel)
            pieces = response.iter_bytes()
            for data in pieces:
                if b"\n" not in data:
                    buffer += data
                    continue
                complete, _, buffer = (buffer + data).rpartition(b"\n")
                for line in complete.decode().split("\n"):  # whole lines: whole characters
                    if not line:
                        continue
                    chunk: wire.ChatChunk = loads(line)
                    message = chunk.get("message")
                    if message is None:
                        if "error" in chunk:
                            error = GenerationError(
                                f"Ollama reported an error mid-answer: {chunk['error']}"
                            )
                            raise mark(error, wire.transient_text(chunk["error"]))
                    else:
                        if message.get("thinking"):
                            yield Thinking(message["thinking"])
                        if message["content"]:
                            yield message["content"]
                    if chunk.get("done"):
                        final = chunk
                        break
                if final is not None:
                    cancel.release()  # the connection goes back to the pool: keep it whole
                    _drain(pieces)
                    break
        except httpx.TimeoutException:  # retryable until text arrived (the base clears it)
            if not cancel.is_set():
                error = GenerationError(
                    f"Ollama sent nothing for {self.settings.read_timeout:g} s mid-answer; the "
                    f"partial answer is kept — raise backends.{self.name}.settings.read_timeout "
                    "if the model is slow"
                )
                raise mark(error) from None
        except httpx.HTTPError as exc:
            if not cancel.is_set():  # else stream.cancel() shut it: "cancelled", below
                error = GenerationError(
                    f"the connection to Ollama at {self.base_url} dropped mid-answer "
                    f"({wire.short(exc)}); the partial answer is kept"
                )
                raise mark(error) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise GenerationError(
                f"Ollama sent a line that is not a valid chat chunk ({wire.short(exc)})"
            ) from None
        finally:
            response.close()
        if final is None and cancel.is_set():  # stream.cancel() shut the connection
            yield Usage(finish_reason="cancelled")
            return
        if final is None:  # the connection ended cleanly but early: a drop
            error = GenerationError(
                "the stream from Ollama ended before its final message; the partial answer is kept"
            )
            raise mark(error)
        yield wire.final_usage(final)

    def download_model(
        self,
        model: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """``/api/pull`` turned into overall progress across layers; ``cancel`` closes it."""
        from ._ollama_pull import pull

        pull(self, model, progress, cancel)
        with self._lock:  # a new pull may bring a projector (or drop one): ask again
            self._vision.pop(self.model_key(model), None)


#: After the ``done`` line, bytes read at most to reach the body's end (normally none).
_DRAIN_LIMIT = 64 * 1024


def _drain(pieces: Iterator[bytes]) -> None:
    """Read the body's end after the last line, so the connection goes back to the pool:
    closed mid-body, httpx drops it and the next request pays for a new connection.
    The answer is complete by now: a failure here only costs the reuse."""
    import httpx

    read = 0
    try:
        for data in pieces:
            read += len(data)
            if read > _DRAIN_LIMIT:  # a server that keeps talking: not worth reusing
                return
    except httpx.HTTPError:
        return
