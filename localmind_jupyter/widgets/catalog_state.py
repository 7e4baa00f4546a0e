"""The catalog's state without widgets: its rows, the filters, what is installed, what not.

``ModelCatalog`` (``catalog.py``) draws this state; everything it decides (which rows a
filter lets through, in which order, whether Download is possible and why not) is here,
so it is tested without ipywidgets. What a backend can do comes from the capabilities
in its ``info`` (``get_backend_info()``), never from its type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.model_registry import human_size
from ..errors import LocalMindError

if TYPE_CHECKING:
    from ..backends.contracts import BackendStatusInfo, CatalogRow, RegistryAnswer
    from ..core.model_loader import ModelLoader

Key = tuple[str, str]
#: Why a backend cannot be used now (its build or load error), or None: supplied by the view.
BackendProblem = Callable[[str], str | None]
#: ``model_key`` of a backend: when two names are one model there.
ModelKey = Callable[[str], str]


@dataclass(frozen=True)
class Filters:
    """What the toolbar asks for; empty fields let everything through."""

    backend: str | None = None
    installed_only: bool = False
    tag: str = ""
    search: str = ""


def haystack(model: CatalogRow) -> str:
    """The text the search box looks in: name, description, parameters and tags."""
    parts = (model["name"], model.get("description"), model.get("parameters"), *model["tags"])
    return " ".join(str(x) for x in parts if x).lower()


def model_key_of(loader: ModelLoader, backend: str) -> ModelKey:
    """The backend's own ``model_key``; names as they are when it cannot be built."""
    try:
        return loader.get(backend).model_key
    except LocalMindError:
        return str


def backend_problem(loader: ModelLoader, backend: str) -> str | None:
    """Why the backend cannot be used (its build error), or None."""
    try:
        loader.get(backend)
    except LocalMindError as exc:
        return str(exc)
    return None


def installed_entry(model: str) -> CatalogRow:
    """A row for a model just downloaded that the catalog does not list (until a refresh)."""
    return {
        "name": model,
        "description": "installed locally",
        "size": None,
        "size_human": human_size(None),
        "parameters": None,
        "tags": [],
        "license": None,
        "installed": True,
        "in_catalog": False,
    }


class CatalogState:
    """Rows of every backend from a ``registry.available()`` answer, plus the selection."""

    def __init__(self) -> None:
        self.result: RegistryAnswer | None = None
        self.selected: Key | None = None
        #: (backend, model) -> the model as shown; insertion order is kept across reloads.
        self.models: dict[Key, CatalogRow] = {}

    # --- data -------------------------------------------------------------------------------
    def set_data(self, result: RegistryAnswer) -> None:
        """Take a new answer: known rows keep their place, new ones come last, gone ones go."""
        self.result = result
        wanted: set[Key] = set()
        for backend, entry in result["backends"].items():
            for model in entry["models"]:
                key = (backend, model["name"])
                wanted.add(key)
                self.models[key] = model.copy()
        for key in [k for k in self.models if k not in wanted]:
            del self.models[key]
        if self.selected not in self.models:
            self.selected = None

    def backends(self) -> list[str]:
        return list(self.result["backends"]) if self.result is not None else []

    def info(self, backend: str) -> BackendStatusInfo | None:
        """The backend's info (``get_backend_info()`` plus status), None when unknown."""
        if self.result is None:
            return None
        entry = self.result["backends"].get(backend)
        return entry["info"].copy() if entry else None

    def downloads(self, backend: str, name: str | None = None) -> bool | None:
        """The declared ``downloads`` capability: the model's where it differs, else its
        backend's; None when the backend could not be built."""
        row = self.models.get((backend, name or ""))
        capabilities = row.get("capabilities") if row is not None else None
        if capabilities is None:
            info = self.info(backend)
            capabilities = info.get("capabilities") if info is not None else None
        return None if capabilities is None else bool(capabilities.get("downloads"))

    def kind(self, backend: str) -> str:
        info = self.info(backend)
        if info is None:
            return backend
        return str(info.get("display_name") or info.get("type") or backend)

    def mark_installed(self, backend: str, model: str, model_key: ModelKey) -> None:
        """A download finished: mark its rows installed at once (the refresh confirms it)."""
        wanted = model_key(model)
        matched = [k for k in self.models if k[0] == backend and model_key(k[1]) == wanted]
        for key in matched:
            self.models[key]["installed"] = True
        if not matched:  # a model the catalog does not list: show it until the refresh
            self.models[(backend, model)] = installed_entry(model)
        self.sync_result(backend)

    def sync_result(self, backend: str) -> None:
        """Keep ``result`` in step with the rows (so a later ``set_data`` keeps the marks)."""
        if self.result is None or backend not in self.result["backends"]:
            return
        rows = [self.models[k] for k in self.ordered() if k[0] == backend]
        self.result["backends"][backend]["models"] = rows

    # --- filtering --------------------------------------------------------------------------
    def ordered(self) -> list[Key]:
        """Backends in config order; in each, installed first, then catalog order."""
        order = {name: i for i, name in enumerate(self.backends())}
        return sorted(
            self.models,
            key=lambda k: (order.get(k[0], len(order)), not self.models[k]["installed"]),
        )

    def matches(self, key: Key, filters: Filters) -> bool:
        model = self.models[key]
        if filters.backend and key[0] != filters.backend:
            return False
        if filters.installed_only and not model["installed"]:
            return False
        if filters.tag and filters.tag not in model["tags"]:
            return False
        words = filters.search.lower().split()
        text = haystack(model) if words else ""
        return all(word in text for word in words)

    def visible(self, filters: Filters) -> list[Key]:
        """The rows the filters let through, in display order."""
        return [k for k in self.ordered() if self.matches(k, filters)]

    def total(self, backend: str | None) -> int:
        return sum(1 for k in self.models if not backend or k[0] == backend)

    def tags(self, backend: str | None) -> list[str]:
        """Every tag of the rows of ``backend`` (None: all), sorted."""
        return sorted(
            {
                tag
                for key, model in self.models.items()
                if not backend or key[0] == backend
                for tag in model["tags"]
            }
        )

    def counts(self, backend: str) -> tuple[int, int]:
        """(installed, listed) rows of one backend."""
        rows = [m for k, m in self.models.items() if k[0] == backend]
        return sum(1 for m in rows if m["installed"]), len(rows)

    # --- actions ----------------------------------------------------------------------------
    def download_block(
        self, *, downloading: Callable[[str, str], bool], problem: BackendProblem
    ) -> str | None:
        """Why the selection cannot be downloaded now, or None.

        ``downloading(backend, model)``: a download of it runs; ``problem(backend)``: why the
        backend cannot be used (asked only when its capabilities are unknown).
        """
        if self.selected is None:
            return "Select a model to use or download it."
        backend, name = self.selected
        info = self.info(backend)
        downloads = self.downloads(backend, name)
        if downloads is None:
            found = problem(backend)
            if found is not None:
                return found
        if downloads is False:
            kind = self.kind(backend)
            if "capabilities" in self.models[self.selected]:  # this model, not the backend
                return f"The {kind} backend does not download {name}: there is nothing to download."
            return f"The {kind} backend downloads no models: there is nothing to download."
        if self.models[self.selected]["installed"]:
            return f"{name} is already installed."
        if info is not None and info.get("available") is False:
            return f"{backend} is unavailable: {info.get('reason')}"
        if downloading(backend, name):
            return "Downloading: see the progress below."
        return None

    def needs_download(self, key: Key) -> bool:
        """Whether "Use" should add "not installed yet: download it"."""
        return not self.models[key]["installed"] and self.downloads(*key) is not False
