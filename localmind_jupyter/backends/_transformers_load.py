"""Loading a model into the Transformers backend: device, dtype, weights, tokenizer.

Imported when a model loads, never to list or describe; torch and transformers are
handed in or imported inside the functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendUnavailable, GenerationError, ModelNotFound
from . import _embedded, _hub, _prefill, _transformers_vision
from ._transformers_names import Source


@dataclass
class Loaded:
    """A model ready to generate, with what the generation loop needs beside it."""

    source: Source
    model: Any
    tokenizer: Any
    device: Any
    eos_ids: frozenset[int]
    #: Prompt tokens the model's positions cover; None when its config does not say.
    context: int | None = None
    #: Built on the first ``schema=``: llguidance's tokenizer and compiled schemas.
    grammars: Any = None
    #: A vision model's processor (its ``tokenizer`` is ``tokenizer``); None for text models.
    processor: Any = None


def pick_device(torch: Any, wanted: str, backend: str) -> Any:
    """``auto`` picks cuda, then mps, then cpu; a device torch cannot see is refused."""
    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(
            f"backends.{backend}.settings.device is '{wanted}' but torch sees no CUDA GPU; "
            "set device: auto or cpu"
        )
    if wanted == "mps" and not torch.backends.mps.is_available():
        raise BackendUnavailable(
            f"backends.{backend}.settings.device is 'mps' but MPS is not available here"
        )
    return torch.device(wanted)


def pick_dtype(torch: Any, wanted: str, device: Any) -> Any:
    if wanted != "auto":
        return getattr(torch, wanted)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32  # half precision on CPU is slower, not faster


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """No "Loading weights" bar in the cell output: a load is a step, not the answer."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class LoadPlan:
    """How ``load`` reads one source: the caller's settings and messages, once resolved."""

    name: str
    device: Any
    dtype: Any
    local_files_only: bool
    cache_dir: str | None
    not_downloaded: Callable[[str], str]
    progress: Callable[[str], Any]


def load(source: Source, plan: LoadPlan) -> Loaded:
    """Read tokenizer and weights, move them to the device, hook the cancel checks."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common: dict[str, Any] = {}
    cached = True
    if source.kind == "embedded":
        try:
            location = str(_embedded.ensure_converted(plan.progress))
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise GenerationError(f"converting the embedded model failed: {exc}") from exc
    elif source.kind == "hub":
        location = source.location
        common["local_files_only"] = plan.local_files_only
        common["cache_dir"] = plan.cache_dir
        cached = _hub.cached_file(source.location, "config.json", plan.cache_dir) is not None
        if plan.local_files_only and not cached:
            raise ModelNotFound(plan.not_downloaded(source.location))
    elif source.kind == "gguf":
        path = Path(source.location)
        location = str(path.parent)
        common["gguf_file"] = path.name
    else:
        location = source.location

    processor = None
    try:
        with quiet_progress_bars():
            if _transformers_vision.sees(source, plan.cache_dir):
                processor, model = _transformers_vision.load_pretrained(
                    location, plan.dtype, common
                )
                tokenizer = processor.tokenizer
            else:
                tokenizer = AutoTokenizer.from_pretrained(location, **common)
                model = AutoModelForCausalLM.from_pretrained(location, dtype=plan.dtype, **common)
    except OSError as exc:
        if source.kind == "hub" and (plan.local_files_only or not cached):
            message = plan.not_downloaded(source.location)
            raise ModelNotFound(f"{message} ({exc})") from exc
        raise GenerationError(f"could not load model '{plan.name}': {exc}") from exc
    except (ValueError, RuntimeError, KeyError, ImportError) as exc:
        raise GenerationError(f"could not load model '{plan.name}': {exc}") from exc
    model.to(plan.device)
    model.eval()
    _prefill.install_cancel_checks(model)
    return Loaded(
        source=source,
        model=model,
        tokenizer=tokenizer,
        device=plan.device,
        eos_ids=_eos_ids(model, tokenizer),
        context=_prefill.context_window(model),
        processor=processor,
    )


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (model.generation_config.eos_token_id, getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)
