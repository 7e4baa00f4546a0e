"""``think=`` on GGUF: the model's chat template rendered with ``enable_thinking``.

llama-cpp-python's ``create_chat_completion`` passes no extra variables to the chat
template, so a Qwen3-style switch cannot be set through it. When ``think`` asks for
something the template can do, the prompt is rendered here with llama-cpp-python's own
``Jinja2ChatFormatter`` (the sandboxed environment, globals and tokens it uses for the chat
path), the extra variables added, and generated with ``create_completion``; the chunks go
through the same loop as the chat path's. Without ``think`` the chat path is used as before,
so the model's default is left alone.

What each ``think`` does, by what the template reads (``ThinkSwitch``):

* ``enable_thinking`` (on/off): ``True`` and the levels switch it on, ``False`` off.
  A level is only "on" unless the template also reads ``reasoning_effort``, which then
  gets the level.
* no switch, but it writes ``<think>``: ``True`` is the model's own default; ``False``
  and the levels are refused, since nothing would honour them.
* ``schema``/``json_mode``: the grammar holds from the first token, so the model cannot
  think first. An on/off template is rendered with thinking off (as Transformers does);
  ``think=True`` or a level is refused.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..errors import OptionError
from ._gguf_meta import ThinkSwitch

if TYPE_CHECKING:
    from ._gguf_generate import Loaded
    from ._request import GenerationRequest

__all__ = ["complete", "template_variables"]


def template_variables(
    switch: ThinkSwitch, request: GenerationRequest, model: str
) -> dict[str, Any]:
    """The chat template variables for ``think``: empty for the chat path (the default).

    Raises ``OptionError`` for a ``think`` the template cannot honour, before anything loads.
    """
    think = request.think
    if not switch.thinks:
        return {}  # a truthy think was refused by the base; False has nothing to switch off
    if request.output_schema is not None or request.json_mode:
        if think not in (None, False):
            raise OptionError(
                f"think={think!r} with schema or json_mode: llama.cpp's grammar holds from the "
                "first token, so the model cannot think first; leave think out (or "
                "think=False) with schema or json_mode"
            )
        return {"enable_thinking": False} if switch.on_off else {}
    if think is None:
        return {}
    if think is False:
        if not switch.on_off:
            raise OptionError(
                f"think=False: the chat template of {model!r} has no enable_thinking switch, "
                "so thinking cannot be switched off for this model; leave think out"
            )
        return {"enable_thinking": False}
    variables: dict[str, Any] = {"enable_thinking": True} if switch.on_off else {}
    if isinstance(think, str):
        if switch.levels:
            variables["reasoning_effort"] = think
        elif not switch.on_off:
            raise OptionError(
                f"think={think!r}: the chat template of {model!r} has no thinking switch, so "
                "there are no thinking levels for this model; use think=True (the model's "
                "own trace), or leave think out"
            )
    return variables


def _token_text(llama: Any, token: int) -> str:
    return "" if token == -1 else llama.detokenize([token], special=True).decode("utf-8", "replace")


def _formatter(loaded: Loaded) -> Any:
    """The template as llama-cpp-python's chat path renders it (built once per model)."""
    if loaded.formatter is None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = loaded.llama
        eos = llama.token_eos()
        loaded.formatter = Jinja2ChatFormatter(
            template=llama.metadata["tokenizer.chat_template"],
            eos_token=_token_text(llama, eos),
            bos_token=_token_text(llama, llama.token_bos()),
            stop_token_ids=[eos],
        )
    return loaded.formatter


def complete(
    loaded: Loaded,
    messages: list[dict[str, str]],
    variables: dict[str, Any],
    stop: list[str],
    kwargs: dict[str, Any],
) -> tuple[Generator[dict[str, Any], None, None], bool]:
    """llama.cpp's chunks for the rendered prompt, and whether the prompt opened a trace.

    ``kwargs`` are the chat path's (sampling, grammar, ``max_tokens``, ``stream``); the
    template's end-of-text token is added to the stops, as the chat path does.
    """
    rendered = _formatter(loaded)(messages=messages, **variables)
    llama = loaded.llama
    tokens = llama.tokenize(
        rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
    )
    own = rendered.stop
    chunks = llama.create_completion(
        prompt=tokens,
        stop=[*stop, *([own] if isinstance(own, str) else own or [])],
        stopping_criteria=rendered.stopping_criteria,
        **kwargs,
    )
    return chunks, rendered.prompt.rstrip().endswith("<think>")
