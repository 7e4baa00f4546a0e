"""Hub downloads of the GGUF backend: one ``.gguf`` file of a repository, with progress.

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
) -> None:
    """``hf_hub_download`` of one file with byte progress and cancel."""
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
