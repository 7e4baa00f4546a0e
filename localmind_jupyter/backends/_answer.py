"""The checks a finished answer gets, the same for every backend: the schema, the budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import GenerationError

if TYPE_CHECKING:
    from ._response import ModelResponse
    from ._schema import OutputSchema


def validated(schema: OutputSchema, response: ModelResponse) -> Any:
    """``parsed`` for a finished answer; a cut or invalid one is a ``GenerationError``."""
    if response.finish_reason == "cancelled":
        return None  # stopped on purpose: nothing to validate, the partial text is kept
    try:
        return schema.parse(response.text)
    except GenerationError as exc:
        if response.finish_reason != "length":
            raise
        raise GenerationError(
            f"{exc}; the answer was cut at max_tokens before it ended: raise max_tokens "
            "(--max-tokens)",
            exc.partial_text,
        ) from None


def budget_warning(response: ModelResponse) -> str | None:
    """Thinking that used the whole budget leaves an empty answer: say so, and what to do."""
    if response.finish_reason != "length" or response.text.strip() or not response.thinking:
        return None
    spent = f" ({response.completion_tokens} tokens)" if response.completion_tokens else ""
    return (
        f"the model spent the whole token budget{spent} thinking, so the answer is empty; "
        "raise max_tokens (--max-tokens), or think less (think='low' or --no-think)"
    )
