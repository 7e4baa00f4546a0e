"""Models kept in memory by the in-process backends (Transformers, GGUF).

Least recently used leaves first; loads are serialised so two threads asking for
the same model load it once; the name as typed maps to the resolved key, so a
loaded model skips resolving again (which may scan folders).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class _Source(Protocol):
    """What a resolved model name must offer: its cache key (read-only: sources are frozen)."""

    @property
    def key(self) -> str: ...


S = TypeVar("S", bound=_Source)
T = TypeVar("T")


class LoadedModels(Generic[S, T]):
    """The models in memory, by resolved key; ``get`` loads on a miss, once per model."""

    def __init__(self, capacity: int, release: Callable[[T], Any] | None = None) -> None:
        self.capacity = capacity
        self._release = release
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._entries: OrderedDict[str, T] = OrderedDict()
        self._aliases: dict[str, str] = {}

    def keys(self) -> list[str]:
        """Keys of the models in memory, least recently used first."""
        with self._lock:
            return list(self._entries)

    def get(self, name: str, resolve: Callable[[str], S], load: Callable[[S], T]) -> T:
        """The loaded model for ``name``, loading it (and evicting the oldest) if needed."""
        with self._lock:
            found = self._hit(self._aliases.get(name), name)
        if found is not None:
            return found
        source = resolve(name)
        with self._lock:  # a new spelling of a loaded model: no wait behind another load
            found = self._hit(source.key, name)
        if found is not None:
            return found
        with self._load_lock:
            with self._lock:  # another thread may have loaded it while we waited
                found = self._hit(source.key, name)
            if found is not None:
                return found
            loaded = load(source)
            evicted: list[T] = []
            with self._lock:
                self._entries[source.key] = loaded
                self._aliases[name] = source.key
                while len(self._entries) > self.capacity:
                    old_key, old = self._entries.popitem(last=False)
                    self._drop_aliases(old_key)
                    evicted.append(old)
        for old in evicted:
            self._released(old)
        return loaded

    def pop(self, key: str) -> None:
        """Forget a model; a model that is not loaded is not an error."""
        with self._lock:
            loaded = self._entries.pop(key, None)
            self._drop_aliases(key)
        if loaded is not None:
            self._released(loaded)

    def _hit(self, key: str | None, name: str) -> T | None:
        if key is None or key not in self._entries:
            return None
        self._entries.move_to_end(key)
        self._aliases[name] = key
        return self._entries[key]

    def _drop_aliases(self, key: str) -> None:
        self._aliases = {name: k for name, k in self._aliases.items() if k != key}

    def _released(self, loaded: T) -> None:
        if self._release is not None:
            self._release(loaded)
