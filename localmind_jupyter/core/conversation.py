"""Chat history for one model: consecutive prompts to the same model form a conversation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .images import ImageInput


@dataclass
class Conversation:
    """Earlier turns sent as chat ``messages``, bounded so prompts do not grow without end."""

    backend: str
    model: str
    max_turns: int = 10
    #: User turns that had images keep them (``"images"``): later turns send them again.
    messages: list[dict[str, Any]] = field(default_factory=list)

    def is_for(self, backend: str, model: str) -> bool:
        return (self.backend, self.model) == (backend, model)

    def add(self, prompt: str, answer: str, images: Sequence[ImageInput] = ()) -> None:
        """Record one exchange and drop the oldest beyond ``max_turns`` exchanges.

        ``images``: those the prompt carried; they stay with it, and so leave with it.
        """
        user: dict[str, Any] = {"role": "user", "content": prompt}
        if images:
            user["images"] = list(images)
        self.messages += [user, {"role": "assistant", "content": answer}]
        keep = max(0, self.max_turns) * 2
        if len(self.messages) > keep:
            del self.messages[: len(self.messages) - keep]

    @property
    def turns(self) -> int:
        return len(self.messages) // 2
