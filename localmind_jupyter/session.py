"""What one kernel remembers: chosen model, aliases, chat history, last answer, downloads.

Shared by the front ends of one process (the magic and the widgets), so choosing a
model in the model manager is what the next ``%%localmind`` cell uses. The backends
are built on first use, not at ``%load_ext``, so loading stays fast and a broken
config only shows up when something needs it, as a clear message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backends.base import BaseBackend, ModelResponse
from .core.conversation import Conversation

if TYPE_CHECKING:
    from .core.downloads import DownloadManager
    from .core.explain import FailedCell
    from .core.model_loader import ModelLoader
    from .core.model_registry import ModelRegistry

#: Failed cells ``%localmind explain`` can still explain (the newest ones).
MAX_FAILED_CELLS = 20


class KernelSession:
    def __init__(self) -> None:
        self._loader: ModelLoader | None = None
        self._registry: ModelRegistry | None = None
        self._downloads: DownloadManager | None = None
        self.chosen_model: str | None = None
        self.aliases: dict[str, str] = {}
        self.conversation: Conversation | None = None
        #: Each compared model's own conversation, by (backend, model): a comparison cell
        #: continues every column's chat, whatever single-model cells ran in between.
        self.compare_conversations: dict[tuple[str, str], Conversation] = {}
        self.last_response: ModelResponse | None = None
        self.cell_errors: dict[int, BaseException] = {}
        #: The newest failed cells by number, their errors already formatted (no frames kept
        #: alive), for ``%localmind explain``; at most ``MAX_FAILED_CELLS``.
        self.failed_cells: dict[int, FailedCell] = {}

    # --- the engine, built lazily -------------------------------------------------------------
    @property
    def loader(self) -> ModelLoader:
        if self._loader is None:
            from .core.model_loader import ModelLoader

            self._loader = ModelLoader()
        return self._loader

    @property
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            from .core.model_registry import ModelRegistry

            self._registry = ModelRegistry(self.loader)
        return self._registry

    @property
    def downloads(self) -> DownloadManager:
        if self._downloads is None:
            from .core.downloads import DownloadManager

            # The current loader's backends, also after a reload: the manager (its running
            # downloads, history and listening panels) lives as long as the session.
            self._downloads = DownloadManager(lambda name: self.loader.get(name))
        return self._downloads

    def reload(self) -> None:
        """Re-read the config and rebuild the backends (after editing config.yaml).

        Downloads keep running and open panels keep seeing new ones.
        """
        self._loader = self._registry = None

    # --- models -------------------------------------------------------------------------------
    def default_spec(self, configured_default: str | None) -> str:
        """Chosen in this kernel, else the traitlets default, else config, else the embedded."""
        return (
            self.chosen_model or configured_default or self.loader.config.effective_default_model()
        )

    def resolve(self, spec: str | None, configured_default: str | None) -> tuple[BaseBackend, str]:
        spec = spec or self.default_spec(configured_default)
        seen: set[str] = set()
        while spec in self.aliases and spec not in seen:  # aliases may point at aliases
            seen.add(spec)
            spec = self.aliases[spec]
        return self.loader.resolve(spec)

    # --- history ------------------------------------------------------------------------------
    def history_for(self, backend: str, model: str, max_turns: int) -> Conversation:
        """The running conversation, or a new one when the model changed."""
        if self.conversation is None or not self.conversation.is_for(backend, model):
            self.conversation = Conversation(backend, model, max_turns)
        self.conversation.max_turns = max_turns
        return self.conversation

    def compare_history_for(self, backend: str, model: str, max_turns: int) -> Conversation:
        """The conversation of one column of a comparison, kept per model."""
        conversation = self.compare_conversations.get((backend, model))
        if conversation is None:
            conversation = Conversation(backend, model, max_turns)
            self.compare_conversations[(backend, model)] = conversation
        conversation.max_turns = max_turns
        return conversation

    def reset(self) -> None:
        self.conversation = None
        self.compare_conversations.clear()

    def record_error(self, execution_count: int | None, error: BaseException | None) -> None:
        if execution_count is not None and error is not None:
            self.cell_errors[execution_count] = error

    def record_failed_cell(self, cell: FailedCell) -> None:
        """Keep a failed cell for ``explain``; the oldest beyond ``MAX_FAILED_CELLS`` go."""
        self.failed_cells.pop(cell.execution_count, None)
        self.failed_cells[cell.execution_count] = cell
        while len(self.failed_cells) > MAX_FAILED_CELLS:
            del self.failed_cells[next(iter(self.failed_cells))]

    def describe(self) -> dict[str, Any]:
        return {
            "chosen_model": self.chosen_model,
            "aliases": dict(self.aliases),
            "history_turns": self.conversation.turns if self.conversation else 0,
        }


_current: KernelSession | None = None


def get_session() -> KernelSession:
    """The session of this process, created on first use."""
    global _current
    if _current is None:
        _current = KernelSession()
    return _current


def reset_session() -> None:
    """Forget everything (used when the extension is unloaded)."""
    global _current
    _current = None
