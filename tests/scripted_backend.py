"""A test-only backend that yields a scripted answer (text, ``Thinking``, ``Usage``), put
into a session's loader in-process, so the front ends' structured output and thinking are
tested without any engine. Importable in a test kernel (the repo is on its PYTHONPATH).
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

from localmind_jupyter.backends import BaseBackend, Capabilities, GenerationRequest, Started
from localmind_jupyter.backends._response import Delta


class ScriptedBackend(BaseBackend):
    """Declares json_schema and thinking; an exception in the script is raised there."""

    type_name = "scripted"
    display_name = "Scripted"
    capabilities = Capabilities(downloads=False, json_schema=True, thinking=True)
    extra_options = frozenset({"repeat_penalty", "num_ctx"})

    def setup(self) -> None:
        self.script: list[Any] = []
        self.sent: list[GenerationRequest] = []
        self.closed = threading.Event()

    def list_models(self) -> list[str]:
        return ["m"]

    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        """The script: an exception is raised, a callable called (a pause), the rest yielded."""
        self.sent.append(request)
        self.closed = threading.Event()
        yield Started()
        try:
            for item in self.script:
                if isinstance(item, BaseException):
                    raise item
                if callable(item):
                    item()
                    continue
                yield item
        finally:
            self.closed.set()  # the source was released (read to its end or closed)


class PlainBackend(ScriptedBackend):
    """Neither JSON nor thinking: what most engines were before issue 13."""

    type_name = "plain"
    display_name = "Plain"
    capabilities = Capabilities(downloads=False)


def install(backend: BaseBackend, loader: Any = None) -> BaseBackend:
    """Put ``backend`` into ``loader`` (default: this process's session's) under its name."""
    from localmind_jupyter.core.model_loader import BackendStatus
    from localmind_jupyter.session import get_session

    statuses = (loader or get_session().loader).statuses
    statuses[backend.name] = BackendStatus(backend.name, backend.type_name, True, backend)
    return backend
