"""Images for the GGUF backend: llama.cpp's multimodal projector (``mmproj``) and chat handler.

A GGUF model sees when a projector file goes with it: the ``mmproj`` setting names one
for a model, its catalog entry names one (a file of the same Hub repository), or a single
``mmproj*.gguf`` lies beside the model file (``mmproj-<model file>`` when the folder holds
several models). Without one the model is text-only and an image is refused before
anything loads (``model_capabilities``).

The projector is checked by its GGUF header first (``general.architecture`` is ``clip``),
so a wrong or broken file gets a clear error instead of reaching llama.cpp, then loaded
with the model by llama-cpp-python's ``MTMDChatHandler``: images go as ``image_url``
data-URL parts in the order ``user_parts`` gives, and the handler puts each where its
part stands. llama_cpp is imported only when a projector loads.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, ModelNotFound, OptionError
from ._catalog import load_catalog
from ._gguf_files import Source, is_projector_name
from ._gguf_meta import string_value
from ._image_parts import user_parts

if TYPE_CHECKING:
    from ..core.images import ImageLimits
    from ._gguf_generate import Loaded
    from ._request import GenerationRequest

__all__ = [
    "catalog_projector",
    "check_projector",
    "find_projector",
    "handler_for",
    "hub_projector",
    "is_projector_name",
    "projector_of",
    "vision_chunks",
    "vision_messages",
]

#: How projector files are named (llama.cpp's convert script and the ggml-org repositories).
_PREFIX = "mmproj"
#: A chat template that reads typed content parts (``{"type": "text", ...}``) writes them
#: itself; one that does not (SmolLM2's) gets each message as one string.
_TYPED_PARTS = re.compile(r"""\[\s*['"]type['"]\s*\]|\.type\b""")


def catalog_projector(name: str) -> str | None:
    """The projector file the shipped catalog names for this model (``mmproj`` key)."""
    for entry in load_catalog("gguf"):
        if entry.name == name:
            value = entry.extra.get("mmproj")
            return str(value) if value else None
    return None


def projector_of(source: Source, name: str, setting: Mapping[str, str]) -> Path | None:
    """The projector of a resolved model (the ``mmproj`` setting, then the catalog, then
    the files beside it); None for a text-only model. Reads no file's contents."""
    if source.kind == "embedded":
        return None
    named = setting.get(name) or setting.get(source.key) or catalog_projector(name)
    return find_projector(source.path, named)


def hub_projector(name: str, filename: str, setting: Mapping[str, str]) -> list[str]:
    """The projector file to download with a Hub model (beside it in the repository), if
    its ``mmproj`` setting or catalog entry names one by a relative path."""
    named = setting.get(name) or catalog_projector(name)
    if not named or Path(named).expanduser().is_absolute():
        return []
    folder = filename.rsplit("/", 1)[0] + "/" if "/" in filename else ""
    return [folder + Path(named).name]


def find_projector(model_path: Path, named: str | None) -> Path | None:
    """The projector of the model at ``model_path``: ``named`` (absolute, or a file beside
    the model), else ``mmproj-<model file>`` beside it, else the one ``mmproj*.gguf``
    beside a folder's only model. None: the model is text-only."""
    folder = model_path.parent
    if named:
        path = Path(named).expanduser()
        return path if path.is_absolute() else folder / path.name
    try:
        ggufs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".gguf")
    except OSError:
        return None
    projectors = [p for p in ggufs if is_projector_name(p.name)]
    own = [p for p in projectors if p.name.lower() == f"{_PREFIX}-{model_path.name}".lower()]
    if own:
        return own[0]
    models = [p for p in ggufs if not is_projector_name(p.name)]
    if projectors and len(models) == 1 and models[0].name == model_path.name:
        return projectors[0]
    return None


def check_projector(path: Path, model: str) -> None:
    """Refuse a missing file or one that is not a projector, before llama.cpp reads it."""
    if not path.is_file():
        raise ModelNotFound(
            f"the projector (mmproj) file of '{model}' does not exist: {path}; download it "
            f"(`%localmind pull gguf:{model}` fetches a catalog model's projector too), or "
            "correct the mmproj setting"
        )
    kind = string_value(path, "general.architecture")
    if kind != "clip":
        what = "is not a GGUF file" if kind is None else f"is a '{kind}' model, not a projector"
        raise GenerationError(
            f"the projector (mmproj) file of '{model}' ({path.name}) {what}; point the mmproj "
            "setting at the model's mmproj-*.gguf file"
        )


def handler_for(llama: Any, projector: Path, model: str) -> Any:
    """A chat handler for ``llama`` with its projector loaded now: a bad file fails at load."""
    cls = _handler_class()
    try:
        handler = cls(clip_model_path=str(projector), verbose=False)
        handler.flatten = not _TYPED_PARTS.search(llama.metadata.get("tokenizer.chat_template", ""))
        handler._init_mtmd_context(llama)  # the handler would on first use: a bad file fails now
    except (ValueError, RuntimeError, OSError) as exc:
        raise GenerationError(
            f"llama.cpp could not load the projector {projector.name} of '{model}': {exc}; the "
            "file may belong to another model (its size must match the model's), be "
            "truncated, or need a newer llama-cpp-python"
        ) from exc
    return handler


_classes: dict[str, type] = {}


def _handler_class() -> type:
    cls = _classes.get("handler")
    if cls is None:
        from llama_cpp.llama_chat_format import MTMDChatHandler

        class _Handler(MTMDChatHandler):
            """Writes each message as one string for templates that know no typed parts."""

            flatten = False

            def _get_template_messages(self, messages: Any, media_marker: str) -> list[Any]:
                if not self.flatten:
                    return list(super()._get_template_messages(messages, media_marker))
                return [_flattened(m, media_marker) for m in messages]

        cls = _classes["handler"] = _Handler
        _quiet_mtmd()
    return cls


_callbacks: list[Any] = []  # kept alive: llama.cpp holds the pointer


def _quiet_mtmd() -> None:
    """llama.cpp's multimodal library logs every image it encodes to the process's stderr
    (the kernel's terminal, under any ``verbose``); drop those lines as ``verbose=False``
    drops the model's."""
    import llama_cpp
    from llama_cpp import mtmd_cpp

    callback = llama_cpp.llama_log_callback(lambda _level, _text, _data: None)
    _callbacks.append(callback)
    mtmd_cpp.mtmd_log_set(callback, None)
    mtmd_cpp.mtmd_helper_log_set(callback, None)


def _flattened(message: Mapping[str, Any], marker: str) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list):
        return dict(message)
    text = "".join(
        marker if part.get("type") == "image_url" else str(part.get("text", "")) for part in content
    )
    return {**message, "content": text}


def vision_messages(
    turns: Iterable[Mapping[str, Any]], limits: ImageLimits
) -> list[dict[str, Any]]:
    """Chat messages with typed parts: text, and each image as a data URL where it stood."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        images = turn.get("images") or []
        parts: list[dict[str, Any]] = []
        for part in user_parts(str(turn["content"]), images) if images else [turn["content"]]:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            else:
                url = part.prepared(limits).data_url()
                parts.append({"type": "image_url", "image_url": {"url": url}})
        messages.append({"role": turn["role"], "content": parts})
    return messages


def vision_chunks(
    loaded: Loaded,
    request: GenerationRequest,
    messages: list[dict[str, Any]],
    variables: Mapping[str, Any],
    kwargs: Mapping[str, Any],
) -> Generator[dict[str, Any], None, None]:
    """The chat handler's stream for a prompt with images; refused for a model without a
    projector (the capability check did that already) and with template variables."""
    if loaded.vision is None:
        raise OptionError(f"'{request.model}' has no projector (mmproj) file, so it cannot see")
    if variables:
        raise OptionError(
            f"think= with images is not supported for '{request.model}' on the GGUF backend "
            "(llama.cpp's image handler renders the chat template without it); leave think out"
        )
    return _lazy(loaded.vision, loaded.llama, messages, list(request.stop), kwargs)


def _lazy(
    handler: Any, llama: Any, messages: list[Any], stop: list[str], kwargs: Mapping[str, Any]
) -> Generator[dict[str, Any], None, None]:
    """The handler's stream, started on the first ``next()``: the prompt and the images are
    evaluated while the model's lock is held and its cancel checks are armed (``generate``).

    On the way out llama.cpp's prompt cache is emptied: the image's positions keep whatever
    token ids were there before, so the next prompt with the same text could reuse the
    image's cache entries as if they were its tokens.
    """
    chunks = None
    try:
        chunks = handler(llama=llama, messages=messages, stop=stop, **kwargs)
        yield from chunks
    finally:
        if chunks is not None:
            chunks.close()
        llama.reset()
