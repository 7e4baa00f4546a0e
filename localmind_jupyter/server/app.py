"""The ``ExtensionApp`` that adds LocalMind's REST API to a running Jupyter server.

Loading it registers routes and creates an empty :class:`ServerState`: no config
is read, no backend is built and nothing heavy (torch) is imported until the
first request needs it, so Jupyter's start-up does not get slower.
"""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Int

from .handlers import routes
from .state import ServerState


class LocalMindExtension(ExtensionApp):
    """Serves ``/localmind/api/…`` (see docs/rest-api.md) from the notebook server."""

    name = "localmind_jupyter"
    description = "LocalMind for Jupyter: the model layer's REST API under Jupyter's auth"
    load_other_extensions = True

    max_concurrent_downloads = Int(
        2, help="Model downloads that transfer at once; the others wait in a queue."
    ).tag(config=True)
    max_concurrent_generations = Int(
        4,
        min=1,
        help=(
            "Generations that run at once (each holds a thread and the engine's cores); "
            "more wait in a queue."
        ),
    ).tag(config=True)
    max_queued_generations = Int(
        16,
        min=0,
        help=(
            "Generations that wait for a free slot; beyond these a request gets "
            "503 with a Retry-After header."
        ),
    ).tag(config=True)
    worker_threads = Int(
        4,
        help=(
            "Threads for blocking backend calls (listing, probing, starting downloads); "
            "each streaming generation has a thread of its own besides these."
        ),
    ).tag(config=True)

    state: ServerState

    def initialize_settings(self) -> None:
        token = getattr(getattr(self.serverapp, "identity_provider", None), "token", None)
        self.state = ServerState(
            max_concurrent_downloads=self.max_concurrent_downloads,
            workers=self.worker_threads,
            max_concurrent_generations=self.max_concurrent_generations,
            max_queued_generations=self.max_queued_generations,
            extra_secrets=(token,),
        )
        self.settings["localmind_state"] = self.state

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes(self.state))

    async def stop_extension(self) -> None:
        """Server shutdown: stop generations and downloads so no thread outlives it."""
        self.state.close()
