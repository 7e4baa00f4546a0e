"""What the Transformers backend can name: model folders, ``.gguf`` files, cached Hub repos.

Nothing here imports torch or transformers: listing models stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import _hub

#: Architectures AutoModelForCausalLM can load, recognised by their class-name suffix.
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
#: Architectures AutoModelForImageTextToText can load (with a ``vision_config``): Idefics3,
#: SmolVLM, Qwen2-VL, LLaVA, Gemma 3, PaliGemma... CLIP/SigLIP (``CLIPModel``) do not generate.
_VISION_SUFFIXES = ("ForConditionalGeneration", "ForImageTextToText")


@dataclass(frozen=True)
class Source:
    """Where a model name points: resolved once, used as the key of the loaded-model cache."""

    key: str
    kind: Literal["embedded", "hub", "folder", "gguf"]
    location: str


def path_source(path: Path) -> Source:
    resolved = path.resolve()
    kind: Literal["gguf", "folder"] = "gguf" if resolved.is_file() else "folder"
    return Source(str(resolved), kind, str(resolved))


def looks_like_model_folder(path: Path, *, require_safetensors: bool) -> bool:
    """config.json plus weights; ``model_dirs`` scanning insists on safetensors."""
    try:
        if not (path.is_dir() and (path / "config.json").is_file()):
            return False
        patterns = ("*.safetensors",) if require_safetensors else ("*.safetensors", "*.bin")
        return any(next(path.glob(p), None) is not None for p in patterns)
    except OSError:
        return False


def models_in(root: Path) -> list[Path]:
    """The ``.gguf`` files and model folders directly in ``root``, hidden entries skipped."""
    try:
        children = sorted(root.iterdir())
    except OSError:
        return []
    return [
        child
        for child in children
        if not child.name.startswith(".")
        and (
            (child.is_file() and child.suffix.lower() == ".gguf")
            or looks_like_model_folder(child, require_safetensors=True)
        )
    ]


def cached_hub_models(cache_dir: str | None) -> list[str]:
    """Hub cache repos with config.json naming a causal-LM architecture and weights."""
    names: list[str] = []
    for repo_id, revision in _hub.cached_revisions(cache_dir):
        if repo_id in names:
            continue
        files = {f.file_name: f.file_path for f in revision.files}
        has_weights = any(n.endswith((".safetensors", ".bin")) for n in files)
        if "config.json" in files and has_weights and _is_causal_config(files["config.json"]):
            names.append(repo_id)
    return names


def _is_causal_config(config_path: Path) -> bool:
    """A chat model's config: a causal LM, or a vision model that writes text."""
    try:
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict):
        return False
    return _architecture_ends(config, _CAUSAL_SUFFIXES) or config_sees(config)


def config_sees(config: dict[str, object]) -> bool:
    """A vision tower (``vision_config``) on an image-text-to-text architecture."""
    return isinstance(config.get("vision_config"), dict) and _architecture_ends(
        config, _VISION_SUFFIXES
    )


def _architecture_ends(config: dict[str, object], suffixes: tuple[str, ...]) -> bool:
    architectures = config.get("architectures")
    return isinstance(architectures, list) and any(
        isinstance(a, str) and a.endswith(suffixes) for a in architectures
    )
