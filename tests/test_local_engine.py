"""``LocalEngineBackend``: the base both in-process engines share, used by a third one here.

``ListEngine`` is a complete in-process engine in a few lines: its "models" are text files
whose lines it answers with. It gets naming (bundled model, absolute paths, ``model_dirs``,
the unknown-model message), the loaded-model cache and the backend info from the base, as
a plugin engine would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from localmind_jupyter.backends import _embedded
from localmind_jupyter.backends._loaded import LoadedModels
from localmind_jupyter.backends._local_engine import LocalEngineBackend, sampling
from localmind_jupyter.backends._request import GenerationRequest
from localmind_jupyter.backends.base import BackendSettings, Delta, Started
from localmind_jupyter.backends.gguf import GGUFBackend
from localmind_jupyter.backends.transformers import TransformersBackend
from localmind_jupyter.errors import ModelNotFound


@dataclass(frozen=True)
class ListSettings(BackendSettings):
    max_loaded_models: int = 1
    model_dirs: list[str] = field(default_factory=list)
    max_new_tokens: int = 8
    hub_cache_dir: str | None = None


@dataclass(frozen=True)
class LineSource:
    key: str
    path: Path | None


class ListEngine(LocalEngineBackend[LineSource, list[str]]):
    type_name = "lines"
    display_name = "Lines"
    Settings = ListSettings
    settings: ListSettings
    name_forms = "the absolute path of a .txt file or a file in model_dirs"

    @property
    def engine_settings(self) -> ListSettings:
        return self.settings

    def _embedded_source(self) -> LineSource:
        return LineSource(_embedded.EMBEDDED_MODEL_NAME, None)

    def _absolute_source(self, path: Path, name: str) -> LineSource:
        if not path.is_file():
            raise ModelNotFound(f"no file '{name}'")
        return LineSource(str(path), path)

    def _listed_source(self, path: Path, name: str) -> LineSource:
        return LineSource(str(path), path)

    def _models_in(self, root: Path) -> list[Path]:
        return sorted(root.glob("*.txt")) if root.is_dir() else []

    def list_models(self) -> list[str]:
        return sorted(self._scan_model_dirs())

    def _load(self, source: LineSource, name: str) -> list[str]:
        self.loads.append(source.key)
        return source.path.read_text().split() if source.path else ["hello"]

    def setup(self) -> None:
        super().setup()
        self.loads: list[str] = []

    def deltas(self, request: GenerationRequest) -> Generator[Delta, None, None]:
        words = self._get_loaded(request.model)
        yield Started()
        yield from words[: self._max_new_tokens(request)]


@pytest.fixture
def engine(tmp_path: Path) -> ListEngine:
    (tmp_path / "one.txt").write_text("a b c")
    (tmp_path / "two.txt").write_text("x y")
    return ListEngine({"model_dirs": [str(tmp_path)]})


def test_a_third_engine_gets_naming_cache_and_info_from_the_base(
    engine: ListEngine, tmp_path: Path
) -> None:
    assert engine.generate("", "one.txt").text == "abc"  # a model_dirs entry
    assert engine.generate("", str(tmp_path / "two.txt")).text == "xy"  # an absolute path
    assert engine.loaded_models() == [str(tmp_path / "two.txt")]  # max_loaded_models: 1
    engine.generate("", "two.txt")  # another spelling of the loaded model: not loaded again
    assert engine.loads == [str(tmp_path / "one.txt"), str(tmp_path / "two.txt")]
    info = engine.get_backend_info()
    assert info["loaded_models"] == [str(tmp_path / "two.txt")]
    assert info["max_loaded_models"] == 1 and info["model_dirs"] == [str(tmp_path)]
    assert info["embedded_model"]["name"] == _embedded.EMBEDDED_MODEL_NAME
    engine.unload_model("two.txt")
    assert engine.loaded_models() == []


def test_the_unknown_model_message_lists_what_there_is(engine: ListEngine) -> None:
    with pytest.raises(ModelNotFound) as info:
        engine.generate("", "three")
    message = str(info.value)
    assert "unknown model 'three' for the Lines backend" in message
    assert "the absolute path of a .txt file" in message
    assert "(available: one.txt, two.txt)" in message
    with pytest.raises(ModelNotFound, match="relative"):
        engine.generate("", "./one.txt")


def test_both_engines_are_local_engines() -> None:
    assert issubclass(TransformersBackend, LocalEngineBackend)
    assert issubclass(GGUFBackend, LocalEngineBackend)


@pytest.mark.parametrize(
    ("options", "greedy"),
    [
        ({}, True),
        ({"temperature": 0}, True),
        ({"temperature": 0.7}, False),
        ({"top_p": 0.9}, False),
    ],
)
def test_greedy_unless_the_options_ask_for_sampling(
    options: dict[str, float], greedy: bool
) -> None:
    plan = sampling(GenerationRequest.build("hi", "m", options))
    assert (plan is None) == greedy
    if plan is not None:
        assert plan.temperature > 0 and 0 < plan.top_p <= 1 and plan.seed >= 0


def test_a_seed_is_kept_and_an_unseeded_sample_gets_a_fresh_one() -> None:
    seeded = sampling(GenerationRequest.build("hi", "m", {"temperature": 1, "seed": 7}))
    assert seeded is not None and seeded.seed == 7
    seeds = set()
    for _ in range(5):
        plan = sampling(GenerationRequest.build("hi", "m", {"temperature": 1}))
        assert plan is not None
        seeds.add(plan.seed)
    assert len(seeds) > 1


def test_a_loaded_model_under_a_new_name_does_not_wait_behind_another_load() -> None:
    @dataclass(frozen=True)
    class Source:
        key: str

    cache: LoadedModels[Source, str] = LoadedModels(2)
    cache.get("a", Source, lambda s: s.key)
    started, release = threading.Event(), threading.Event()

    def slow(source: Source) -> str:
        started.set()
        release.wait(5)
        return source.key

    loading = threading.Thread(target=cache.get, args=("b", Source, slow))
    loading.start()
    try:
        assert started.wait(5)
        t0 = time.perf_counter()
        # "A" resolves to the loaded "a": answered at once, not after b's load.
        assert cache.get("A", lambda n: Source(n.lower()), slow) == "a"
        assert time.perf_counter() - t0 < 1
    finally:
        release.set()
        loading.join(5)


def test_a_renamed_transformers_backend_says_to_pull_with_its_own_name(tmp_path: Path) -> None:
    backend = TransformersBackend({"hub_cache_dir": str(tmp_path / "hub")}, name="hf")
    with pytest.raises(ModelNotFound, match=r"%localmind pull hf:owner/model"):
        backend.load_model("owner/model")
