"""Hugging Face Hub downloads and cache reads shared by the backends that use the Hub.

``huggingface_hub`` reports progress only through a tqdm class; ours is silent (no
bar in the cell), forwards bytes to a ``DownloadProgress`` callback and aborts the
transfer from inside when the ``cancel`` event is set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import DownloadError

if TYPE_CHECKING:
    from huggingface_hub import CachedRevisionInfo


class DownloadCancelled(Exception):
    """Raised from a progress update to abort a ``huggingface_hub`` download from inside."""


def require_online(name: str) -> None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise DownloadError(
            f"cannot download '{name}': HF_HUB_OFFLINE is set, so the Hub is not contacted"
        )


def silent_tqdm(
    cancel: threading.Event | None, on_update: Callable[[Any, int], None] | None = None
) -> type:
    """A tqdm class for ``tqdm_class=``: shows nothing, checks ``cancel``, calls ``on_update``.

    ``on_update(bar, n)`` gets the bar (with ``label``, ``start`` and ``size`` kept, since
    a disabled tqdm has no ``desc``) and the bytes of this update.
    """
    from tqdm import tqdm  # the plain class: tqdm.auto may pick the notebook widget one

    class Silent(tqdm):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.label = str(kwargs.get("desc") or "")
            self.start = int(kwargs.get("initial") or 0)
            self.size = kwargs.get("total")
            kwargs["disable"] = True
            kwargs.pop("name", None)  # only huggingface_hub's own tqdm takes it
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled
            if on_update is not None and n:
                on_update(self, int(n))
            return None

    return Silent


def download_error(repo_id: str, exc: Exception) -> DownloadError:
    """A message that says what went wrong with a Hub download and what to do."""
    from huggingface_hub import errors as hf_errors

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__

    def first(kind: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kind)), None)

    if gated := first(hf_errors.GatedRepoError):
        return DownloadError(
            f"'{repo_id}' is gated: accept its licence on huggingface.co and log in "
            f"with `hf auth login` ({gated})"
        )
    if first(hf_errors.RepositoryNotFoundError):
        return DownloadError(
            f"no model '{repo_id}' on the Hugging Face Hub (or it is private: log in with "
            "`hf auth login`)"
        )
    if missing := first(hf_errors.RevisionNotFoundError):
        return DownloadError(f"'{repo_id}' has no main revision: {missing}")
    if first(hf_errors.OfflineModeIsEnabled):
        return DownloadError(
            f"cannot download '{repo_id}': HF_HUB_OFFLINE is set, so the Hub is not contacted"
        )
    network = next(
        (
            e
            for e in chain
            if type(e).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "httpcore2"}
            or isinstance(e, ConnectionError)
        ),
        None,
    )
    if network is not None:
        return DownloadError(
            f"the connection to the Hub dropped while downloading '{repo_id}' "
            f"({type(network).__name__}: {network}); download again — finished files are kept"
        )
    if http := first(hf_errors.HfHubHTTPError):
        return DownloadError(f"the Hub refused the download of '{repo_id}': {http}")
    return DownloadError(f"downloading '{repo_id}' failed: {type(exc).__name__}: {exc}")


def cached_file(repo_id: str, filename: str, cache_dir: str | None) -> str | None:
    """The cached path of one file of a Hub repository; None when not cached (or unreadable)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    except Exception:  # noqa: BLE001 - a malformed cache is "not cached"
        return None
    return found if isinstance(found, str) else None


def cached_revisions(cache_dir: str | None) -> Iterator[tuple[str, CachedRevisionInfo]]:
    """(repo id, revision) of every model repository in the Hub cache; none if it is unreadable."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir)
    except Exception:  # noqa: BLE001 - no cache folder (CacheNotFound) or an unreadable one
        return
    for repo in info.repos:
        if repo.repo_type == "model":
            for revision in repo.revisions:
                yield repo.repo_id, revision
