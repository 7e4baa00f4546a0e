"""Chat history for one model: consecutive prompts to the same model form a conversation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Conversation:
    """Earlier turns sent as chat ``messages``, bounded so prompts do not grow without end."""

    backend: str
    model: str
    max_turns: int = 10
    messages: list[dict[str, str]] = field(default_factory=list)

    def is_for(self, backend: str, model: str) -> bool:
        return (self.backend, self.model) == (backend, model)

    def add(self, prompt: str, answer: str) -> None:
        """Record one exchange and drop the oldest beyond ``max_turns`` exchanges."""
        self.messages += [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": answer},
        ]
        keep = max(0, self.max_turns) * 2
        if len(self.messages) > keep:
            del self.messages[: len(self.messages) - keep]

    @property
    def turns(self) -> int:
        return len(self.messages) // 2
