"""Hub downloads of the GGUF backend: one ``.gguf`` file of a repository, with progress
(two for a vision model: the model and its projector, ``download_files``).

``hf_hub_download`` reports the file's bytes; ``cancel`` stops it within one chunk.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..errors import DownloadError
from . import _hub
from ._gguf_files import is_gguf
from .base import DownloadProgress, ProgressCallback


def download_file(
    name: str,
    repo_id: str,
    filename: str,
    backend: str,
    report: ProgressCallback,
    cancel: threading.Event | None,
    cache_dir: str | None,
) -> int:
    """``hf_hub_download`` of one file with byte progress and cancel; its size in bytes."""
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    _hub.require_online(name)
    done: dict[Any, int] = {}

    def count(bar: Any, n: int) -> None:
        done[bar] = done.get(bar, bar.start) + n
        total = int(bar.size) if bar.size else None
        report(DownloadProgress(name, backend, "downloading", done[bar], total))

    try:
        if cancel is not None and cancel.is_set():
            raise _hub.DownloadCancelled
        report(DownloadProgress(name, backend, "pulling manifest"))
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, cache_dir=cache_dir, tqdm_class=_hub.silent_tqdm(cancel, count)
        )
    except _hub.DownloadCancelled:
        raise DownloadError(f"download of '{name}' was cancelled") from None
    except hf_errors.EntryNotFoundError:
        raise DownloadError(
            f"'{repo_id}' on the Hugging Face Hub has no file '{filename}'; see the "
            "repository's file list for the exact name"
        ) from None
    except Exception as exc:  # classified by its cause
        raise _hub.download_error(repo_id, exc) from exc
    size = Path(path).stat().st_size
    if not is_gguf(Path(path)):
        raise DownloadError(f"'{name}' was downloaded but is not a GGUF file")
    report(DownloadProgress(name, backend, "success", size, size))
    return size


def download_files(
    name: str,
    repo_id: str,
    filenames: list[str],
    backend: str,
    report: ProgressCallback,
    cancel: threading.Event | None,
    cache_dir: str | None,
) -> None:
    """Several files of one repository (a model and its projector) as one download: the
    bytes add up across files and only the last file's end is reported as success."""
    before = 0
    for index, filename in enumerate(filenames):
        last = index == len(filenames) - 1

        def step(p: DownloadProgress, before: int = before, last: bool = last) -> None:
            if p.status == "success" and not last:
                return
            total = None if p.total is None else before + p.total
            report(DownloadProgress(name, backend, p.status, before + p.completed, total, p.phase))

        before += download_file(name, repo_id, filename, backend, step, cancel, cache_dir)
