"""Hub downloads of the Transformers backend: config, tokenizer and safetensors weights only.

One ``snapshot_download`` dry run plans the files and their size; the real one reports
the bytes written and stops within one chunk once ``cancel`` is set.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import DownloadError
from . import _hub
from .base import DownloadProgress, ProgressCallback

#: What a causal LM needs from a Hub repository, and nothing else (no .bin, no ONNX, no GGUF).
DOWNLOAD_PATTERNS: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    # A vision model's processor: image (and SmolVLM2's video) preprocessing settings.
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
)


def download_snapshot(
    repo_id: str,
    backend: str,
    report: ProgressCallback,
    cancel: threading.Event | None,
    cache_dir: str | None,
) -> None:
    """``snapshot_download`` restricted to ``DOWNLOAD_PATTERNS``, with progress and cancel."""
    import huggingface_hub

    _hub.require_online(repo_id)
    lock = threading.Lock()
    done = [0]
    total: list[int | None] = [None]

    def count(bar: Any, n: int) -> None:
        # Of the bars snapshot_download opens, "Reconstructing" counts bytes written.
        if bar.label.startswith("Reconstructing"):
            with lock:
                done[0] += n
                completed = done[0]
            report(DownloadProgress(repo_id, backend, "downloading", completed, total[0]))

    try:
        if cancel is not None and cancel.is_set():
            raise _hub.DownloadCancelled
        report(DownloadProgress(repo_id, backend, "pulling manifest"))
        plan = huggingface_hub.snapshot_download(
            repo_id,
            allow_patterns=list(DOWNLOAD_PATTERNS),
            cache_dir=cache_dir,
            dry_run=True,
            tqdm_class=_hub.silent_tqdm(cancel),
        )
        names = {f.filename for f in plan}
        if "config.json" not in names or not any(n.endswith(".safetensors") for n in names):
            raise DownloadError(
                f"'{repo_id}' has no config.json with safetensors weights; the transformers "
                "backend downloads only safetensors models"
            )
        total[0] = sum(f.file_size or 0 for f in plan if f.will_download) or None
        if cancel is not None and cancel.is_set():
            raise _hub.DownloadCancelled
        huggingface_hub.snapshot_download(
            repo_id,
            allow_patterns=list(DOWNLOAD_PATTERNS),
            cache_dir=cache_dir,
            tqdm_class=_hub.silent_tqdm(cancel, count),
        )
    except _hub.DownloadCancelled:
        raise DownloadError(f"download of '{repo_id}' was cancelled") from None
    except DownloadError:
        raise
    except Exception as exc:  # classified by its cause: the dry run wraps the real error
        raise _hub.download_error(repo_id, exc) from exc
    report(DownloadProgress(repo_id, backend, "success", total[0] or 0, total[0]))
