"""The in-memory model cache shared by the Transformers and GGUF backends."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from localmind_jupyter.backends._loaded import LoadedModels


@dataclass(frozen=True)
class Source:
    key: str


def test_least_recently_used_leaves_first_and_is_released():
    released: list[str] = []
    cache: LoadedModels[Source, str] = LoadedModels(2, release=released.append)
    resolved: list[str] = []

    def resolve(name: str) -> Source:
        resolved.append(name)
        return Source(name.lower())

    def load(source: Source) -> str:
        return f"model:{source.key}"

    assert cache.get("A", resolve, load) == "model:a"
    assert cache.get("B", resolve, load) == "model:b"
    assert cache.get("A", resolve, load) == "model:a"  # by alias: no resolve again
    assert resolved == ["A", "B"]
    cache.get("C", resolve, load)
    assert cache.keys() == ["a", "c"] and released == ["model:b"]
    cache.pop("a")
    assert cache.keys() == ["c"] and released == ["model:b", "model:a"]
    cache.get("A", resolve, load)  # the alias went with the model: resolved and loaded anew
    assert resolved[-1] == "A" and cache.keys() == ["c", "a"]
    cache.pop("missing")  # not loaded: not an error


def test_concurrent_requests_load_once():
    cache: LoadedModels[Source, object] = LoadedModels(2)
    loads: list[str] = []

    def load(source: Source) -> object:
        loads.append(source.key)
        time.sleep(0.1)
        return object()

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("m", Source, load)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert loads == ["m"]
    assert len({id(r) for r in results}) == 1
