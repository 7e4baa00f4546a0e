"""Images for the Transformers backend: vision models through their processor.

A model sees when its ``config.json`` has a ``vision_config`` and an image-text-to-text
architecture (Idefics3/SmolVLM, Qwen2-VL, LLaVA, Gemma 3, PaliGemma...): read from disk
without loading anything (``sees``), so a text-only model is refused an image before its
weights load. Such a model loads through ``AutoProcessor`` and
``AutoModelForImageTextToText``; every prompt to it, with images or without, goes through
the processor's chat template with typed content parts (``{"type": "image"}`` where each
image stood: ``user_parts``), and its pixel inputs come from the images the core prepared.
Generation is the text path's (``_transformers_generate``): same streamer, cancel, stops.
torch, transformers and pillow are imported only when a model loads or a prompt is built.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OptionError
from . import _hub
from ._catalog import load_catalog
from ._image_parts import user_parts
from ._transformers_names import config_sees

if TYPE_CHECKING:
    from ..core.images import ImageLimits, PreparedImage
    from ._transformers_load import Loaded
    from ._transformers_names import Source

__all__ = ["encode", "load_pretrained", "sees"]

#: The shipped catalog of this backend's models (``catalogs/transformers.yaml``).
_CATALOG = "transformers"
#: Prompt tokens decoded to see whether the template opened a ``<think>`` trace.
_TAIL_TOKENS = 8


def sees(source: Source, hub_cache: str | None) -> bool:
    """Whether the model's config names a vision tower (read from disk, cached); a Hub model
    not downloaded yet sees when the shipped catalog tags it ``vision``."""
    if source.kind == "hub" and _hub.cached_file(source.location, "config.json", hub_cache) is None:
        return any(e.name == source.location and "vision" in e.tags for e in load_catalog(_CATALOG))
    return _config_sees(source.kind, source.location, hub_cache)


@functools.lru_cache(maxsize=64)
def _config_sees(kind: str, location: str, hub_cache: str | None) -> bool:
    if kind in ("embedded", "gguf"):
        return False  # the bundled model is text-only; GGUF files load as causal LMs
    if kind == "hub":
        path = Path(str(_hub.cached_file(location, "config.json", hub_cache)))
    else:
        path = Path(location) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config_sees(config)


def load_pretrained(location: str, dtype: Any, common: Mapping[str, Any]) -> tuple[Any, Any]:
    """The processor and the image-text-to-text model of a vision model's folder or repo."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(location, **common)  # type: ignore[no-untyped-call]
    model = AutoModelForImageTextToText.from_pretrained(location, dtype=dtype, **common)
    return processor, model


def encode(
    loaded: Loaded,
    turns: Iterable[Mapping[str, Any]],
    limits: ImageLimits,
    think: bool | str | None,
) -> tuple[dict[str, Any], bool]:
    """Token ids and pixel inputs on the model's device, and whether a trace was opened."""
    processor = loaded.processor
    conversation = [_message(turn, limits) for turn in turns]
    extra = {} if think is None else {"enable_thinking": think is not False}
    try:
        encoded = processor.apply_chat_template(
            conversation,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **extra,
        )
    except Exception as exc:  # jinja and the image processor raise their own errors
        raise OptionError(f"the model's processor rejected the messages: {exc}") from exc
    tail = loaded.tokenizer.decode(encoded["input_ids"][0, -_TAIL_TOKENS:])
    opened = tail.rstrip().endswith("<think>")
    dtype = getattr(loaded.model, "dtype", None)
    inputs: dict[str, Any] = {}
    for key, value in dict(encoded).items():
        if value.is_floating_point() and dtype is not None:
            inputs[key] = value.to(loaded.device, dtype=dtype)  # pixel values in the model's dtype
        else:
            inputs[key] = value.to(loaded.device)
    return inputs, opened


def _message(turn: Mapping[str, Any], limits: ImageLimits) -> dict[str, Any]:
    """One turn as typed parts (vision templates read every message's content as a list)."""
    text = str(turn["content"])
    images = turn.get("images") or []
    content: list[dict[str, Any]] = []
    for part in user_parts(text, images) if images else [text]:
        if isinstance(part, str):
            if part:
                content.append({"type": "text", "text": part})
        else:
            content.append({"type": "image", "image": _pil(part.prepared(limits))})
    return {"role": turn["role"], "content": content}


def _pil(image: PreparedImage) -> Any:
    """The prepared image decoded for the processor (RGB, as image processors expect)."""
    from PIL import Image

    with Image.open(io.BytesIO(image.data)) as opened:
        return opened.convert("RGB")
