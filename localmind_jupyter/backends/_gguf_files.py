"""What the GGUF backend can name: ``.gguf`` files on disk and in the Hugging Face cache.

Nothing here imports llama_cpp: listing models and describing the backend stay cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import _hub, _names

if TYPE_CHECKING:
    from .contracts import InstalledModel

#: One path segment of a file inside a Hub repository.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$")
#: The first bytes of every GGUF file.
_GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class Source:
    """Where a model name points: resolved once; ``key`` is the loaded-model cache key."""

    key: str
    kind: Literal["embedded", "file", "hub"]
    path: Path


def is_projector_name(name: str) -> bool:
    """A multimodal projector by its name (``mmproj*.gguf``): never listed as a model."""
    lowered = Path(name).name.lower()
    return lowered.startswith("mmproj") and lowered.endswith(".gguf")


def split_hub_name(name: str) -> tuple[str, str] | None:
    """``owner/repo/path/file.gguf`` -> (``owner/repo``, ``path/file.gguf``), or None."""
    parts = name.split("/")
    if len(parts) < 3:
        return None
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if not _names.is_repo_id(repo_id):
        return None
    segments = parts[2:]
    if not all(_SEGMENT.match(s) and ".." not in s for s in segments):
        return None
    if not filename.lower().endswith(".gguf"):
        return None
    return repo_id, filename


def hub_cached_file(repo_id: str, filename: str, cache_dir: str | None) -> Path | None:
    """The downloaded file, or None when it is not in the Hugging Face cache."""
    found = _hub.cached_file(repo_id, filename, cache_dir)
    return Path(found) if found is not None and Path(found).is_file() else None


def cached_hub_ggufs(cache_dir: str | None) -> dict[str, Path]:
    """``owner/repo/file.gguf`` -> path, for every GGUF file in the Hugging Face cache."""
    found: dict[str, Path] = {}
    for repo_id, revision in _hub.cached_revisions(cache_dir):
        for f in revision.files:
            if not f.file_name.lower().endswith(".gguf") or is_projector_name(f.file_name):
                continue
            try:
                relative = Path(f.file_path).relative_to(revision.snapshot_path).as_posix()
            except ValueError:
                relative = f.file_name
            found.setdefault(f"{repo_id}/{relative}", Path(f.file_path))
    return found


def gguf_files(root: Path) -> list[Path]:
    """``*.gguf`` files in ``root`` and its direct subfolders; hidden entries and projector
    files (``mmproj*.gguf``, see ``_gguf_vision``) skipped."""
    try:
        children = sorted(root.iterdir())
    except OSError:
        return []
    files: list[Path] = []
    for child in children:
        if child.name.startswith("."):
            continue
        try:
            if child.is_file() and _is_model_file(child):
                files.append(child)
            elif child.is_dir():
                files.extend(
                    p for p in sorted(child.iterdir()) if p.is_file() and _is_model_file(p)
                )
        except OSError:
            continue
    return files


def _is_model_file(path: Path) -> bool:
    name = path.name
    return (
        name.lower().endswith(".gguf") and not name.startswith(".") and not is_projector_name(name)
    )


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == _GGUF_MAGIC
    except OSError:
        return False


def detail(name: str, path: Path) -> InstalledModel:
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    return {"name": name, "size": size, "path": str(path), "format": "gguf"}


def llama_cpp_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return None
