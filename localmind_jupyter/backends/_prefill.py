"""The prompt pass (prefill) of the Transformers backend: bounded, and stoppable inside.

A closed stream must stop the compute, but ``generate`` checks its ``StoppingCriteria``
only between decoding steps, and the prompt pass is one forward call that runs for
minutes on a long prompt. Two things bound it:

* a prompt longer than the model's context window is refused before any compute, as
  llama.cpp refuses it (``_local_engine.check_context``);
* the prompt is run through the model in chunks of ``CHUNK`` tokens into a KV cache that
  ``generate`` then continues (``prefill``), so no single attention call covers the whole
  prompt; forward pre-hooks on the modules of the model's blocks check the generating
  thread's cancel event and raise ``GenerationCancelled`` (``install_cancel_checks``,
  ``cancel_scope``). A cancel thus stops the worker within one module of one chunk:
  ~0.05 s for SmolLM2-135M on two busy cores, against a minute for a 7000-token pass.

torch is imported only by ``prefill``, which runs on the worker thread.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from collections.abc import Iterator
from typing import Any

#: Config fields that name the longest sequence a model's positions cover, by architecture.
_WINDOW_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_HOOKED = "_localmind_cancel_checks"
#: Prompt tokens per forward call of the prompt pass.
CHUNK = 256
_local = threading.local()
logger = logging.getLogger(__name__)


class GenerationCancelled(Exception):
    """Raised inside the model's forward pass once the stream was cancelled."""


def context_window(model: Any) -> int | None:
    """The longest prompt + answer the model's position table covers; None if it says not."""
    config = getattr(model, "config", None)
    text_config = getattr(config, "get_text_config", None)
    if callable(text_config):
        config = text_config()
    for name in _WINDOW_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def install_cancel_checks(model: Any) -> None:
    """Hook every module of the model's blocks once; a hook costs ~1 µs per call."""
    if getattr(model, _HOOKED, False):
        return
    blocks = _largest_module_list(model)
    modules = [m for block in blocks for m in block.modules()] if blocks else [model]
    for module in modules:
        module.register_forward_pre_hook(_check_cancel)
    setattr(model, _HOOKED, True)


def prefill(model: Any, gen_kwargs: dict[str, Any], cancel: threading.Event) -> None:
    """Fill a KV cache with all prompt tokens but the last, ``CHUNK`` at a time.

    ``generate`` given the cache and the whole prompt computes only the uncached last
    token, so its answer is the one it would give alone. Short prompts are left to it.
    """
    ids = gen_kwargs["input_ids"]
    total = int(ids.shape[-1])
    if total <= CHUNK or ids.shape[0] != 1 or "pixel_values" in gen_kwargs:
        return  # image features join the prompt inside generate's first pass, not a chunk's
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    # transformers 5.x renames past_key_values to cache; older models know the old name.
    name = "cache" if _accepts(model, "cache") else "past_key_values"
    extra: dict[str, Any] = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    try:
        with torch.no_grad():
            for start in range(0, total - 1, CHUNK):
                if cancel.is_set():
                    raise GenerationCancelled
                end = min(start + CHUNK, total - 1)
                if _accepts(model, "cache_position"):
                    extra["cache_position"] = torch.arange(start, end, device=ids.device)
                model(input_ids=ids[:, start:end], use_cache=True, **{name: cache}, **extra)
    except GenerationCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - a model whose cache this does not fit
        logger.debug("chunked prefill not possible for %s: %r", type(model).__name__, exc)
        return  # generate does the whole pass itself; the hooks still stop it
    gen_kwargs[name] = cache


@contextlib.contextmanager
def cancel_scope(event: threading.Event) -> Iterator[None]:
    """Forward passes on this thread raise ``GenerationCancelled`` once ``event`` is set."""
    _local.event = event
    try:
        yield
    finally:
        _local.event = None


def _check_cancel(_module: Any, _args: Any) -> None:
    event = getattr(_local, "event", None)
    if event is not None and event.is_set():
        raise GenerationCancelled


def _accepts(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _largest_module_list(model: Any) -> list[Any]:
    """The model's repeated blocks: its longest ``ModuleList`` (``model.layers``, ``h``...)."""
    best: list[Any] = []
    for module in model.modules():
        if type(module).__name__ == "ModuleList" and len(module) > len(best):
            best = list(module)
    return best
