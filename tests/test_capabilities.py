"""Capabilities declared once by each backend, and every front end reading them.

A plugin backend here declares ``downloads=False`` and ``seed=False``: the catalog offers
no download, REST refuses one with 400, and a seed is refused with a clear message.
No front end or core module names a backend type: they ask the backend.
"""

from __future__ import annotations

import ast
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from localmind_jupyter.backends import _BUILTIN_BACKENDS, backend_class
from localmind_jupyter.backends.base import BaseBackend, DownloadProgress
from localmind_jupyter.backends.capabilities import Capabilities, ModelNameError
from localmind_jupyter.config import parse_config
from localmind_jupyter.core.downloads import DownloadManager
from localmind_jupyter.core.model_loader import ModelLoader
from localmind_jupyter.core.model_registry import ModelRegistry
from localmind_jupyter.errors import OptionError
from localmind_jupyter.server.errors import ApiError
from localmind_jupyter.server.state import ServerState
from localmind_jupyter.server.validation import DownloadRequest
from localmind_jupyter.widgets.catalog_state import CatalogState
from tests.conftest import REPO


class NoDownloadBackend(BaseBackend):
    """A plugin that serves its models itself and has no seed."""

    type_name = "capsplugin"
    display_name = "Caps plugin"
    capabilities = Capabilities(downloads=False, seed=False)

    def list_models(self) -> list[str]:
        return ["echo-1"]

    def download_model(self, model: str, progress: Any = None, cancel: Any = None) -> None:
        raise AssertionError("a front end asked a backend that declares downloads=False")


class PhasedBackend(BaseBackend):
    """Downloads in two phases, with a new status text at every step of the first."""

    type_name = "capsphases"

    def list_models(self) -> list[str]:
        return []

    def download_model(self, model: str, progress: Any = None, cancel: Any = None) -> None:
        for i in range(5):
            progress(DownloadProgress(model, self.name, f"file {i} of 5", i, 10, "downloading"))
        progress(DownloadProgress(model, self.name, "checking sums", 10, 10, "verifying"))


class MixedBackend(BaseBackend):
    """Downloads its local models; ``served-1`` lives on a server and has nothing to fetch."""

    type_name = "capsmixed"
    display_name = "Mixed"

    def list_models(self) -> list[str]:
        return ["local-1", "served-1"]

    def model_capabilities(self, model: str) -> Capabilities:
        served = model.startswith("served-")
        return Capabilities(downloads=False) if served else self.capabilities

    def download_model(self, model: str, progress: Any = None, cancel: Any = None) -> None:
        assert not model.startswith("served-"), "asked to download a model that declares none"


@pytest.fixture
def plugin_loader(monkeypatch: pytest.MonkeyPatch) -> ModelLoader:
    monkeypatch.setitem(_BUILTIN_BACKENDS, "capsplugin", f"{__name__}:NoDownloadBackend")
    return ModelLoader(parse_config("backends:\n  plug:\n    type: capsplugin\n"))


# --- the declaration --------------------------------------------------------------------------


def test_every_builtin_backend_declares_its_capabilities():
    declared = {name: backend_class(name).capabilities for name in _BUILTIN_BACKENDS}
    assert all(isinstance(c, Capabilities) for c in declared.values())
    downloads = {name for name, c in declared.items() if c.downloads}
    assert downloads == {"ollama", "transformers", "gguf"}
    assert {name for name, c in declared.items() if not c.seed} == {"anthropic"}
    assert all(c.streaming for c in declared.values())
    # The remote backends send images (to the models ``model_capabilities`` says see).
    assert all(declared[n].images for n in ("ollama", "openai", "vllm", "tensorrt", "anthropic"))
    # Mapped natively (format/think; output_config/thinking): declared, so offered.
    assert all(declared[n].json_schema and declared[n].thinking for n in ("ollama", "anthropic"))
    # The OpenAI-compatible family enforces schemas (response_format) and reads reasoning.
    assert all(
        declared[n].json_schema and declared[n].thinking for n in ("openai", "vllm", "tensorrt")
    )
    # gguf enforces a schema with llama.cpp's grammar; its thinking is per model.
    assert declared["gguf"].json_schema and not declared["gguf"].thinking
    # Transformers enforces a schema (llguidance); thinking is per model (its chat template).
    assert declared["transformers"].json_schema and not declared["transformers"].thinking


def test_a_backend_without_download_model_never_offers_downloads():
    class Served(BaseBackend):
        type_name = "served"

    class Legacy(BaseBackend):  # the spelling before capabilities
        type_name = "legacy"
        downloads_models = False

        def download_model(self, model: str, progress: Any = None, cancel: Any = None) -> None:
            raise AssertionError

    assert Served.capabilities.downloads is False and Served().downloads_models is False
    assert Legacy.capabilities.downloads is False and Legacy().downloads_models is False
    assert Served().model_capabilities("any") == Served.capabilities


def test_backend_info_carries_the_capabilities(plugin_loader):
    info = plugin_loader.get("plug").get_backend_info()
    assert info["capabilities"] == {
        "downloads": False,
        "streaming": True,
        "json_schema": False,
        "thinking": False,
        "images": False,
        "seed": False,
    }
    assert info["downloads_models"] is False
    rest = ServerState(loader_factory=lambda: plugin_loader).backends()
    assert rest["backends"]["plug"]["info"]["capabilities"]["downloads"] is False


# --- front ends reading it --------------------------------------------------------------------


def test_catalog_offers_no_download_for_a_plugin_that_declares_none(plugin_loader):
    state = CatalogState()
    state.set_data(ModelRegistry(plugin_loader).available(probe=True))
    state.selected = ("plug", "echo-1")
    reason = state.download_block(downloading=lambda *_: False, problem=lambda _b: None)
    assert reason == "The Caps plugin backend downloads no models: there is nothing to download."
    assert not state.needs_download(("plug", "echo-1"))


def test_catalog_widget_disables_download_for_a_plugin_that_declares_none(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
):
    from localmind_jupyter.session import reset_session
    from localmind_jupyter.widgets import ModelCatalog

    monkeypatch.setitem(_BUILTIN_BACKENDS, "capsplugin", f"{__name__}:NoDownloadBackend")
    (isolated_home / "config.yaml").write_text("backends:\n  plug:\n    type: capsplugin\n")
    reset_session()
    catalog = ModelCatalog()
    try:
        assert catalog.wait(10)
        catalog.select("plug", "echo-1")
        assert catalog.download_button.disabled
        assert "nothing to download" in catalog.reason.value
        assert catalog.download() is None
        catalog.use()
        assert "not installed yet" not in catalog.message.value
    finally:
        catalog.close()
        reset_session()


def test_rest_refuses_a_download_from_a_plugin_that_declares_none(plugin_loader):
    state = ServerState(loader_factory=lambda: plugin_loader)
    try:
        with pytest.raises(ApiError) as info:
            state.start_download(DownloadRequest(backend="plug", model="echo-1"))
        assert info.value.status == 400
        assert "there is nothing to download; generate with it directly" in info.value.message
        with pytest.raises(ApiError) as info:  # nor is it picked for a bare model name
            state.start_download(DownloadRequest(backend=None, model="echo-1"))
        assert info.value.status == 400 and "no configured backend downloads" in info.value.message
    finally:
        state.close()


def test_the_download_manager_never_asks_a_backend_that_declares_no_downloads(plugin_loader):
    manager = DownloadManager(plugin_loader.get)  # what `%localmind pull plug:echo-1` uses
    final = manager.start("plug", "echo-1").wait(10)
    assert final.state == "failed"
    assert final.error == "backend 'plug' downloads no models: there is nothing to download"


def test_a_model_that_differs_from_its_backend_is_read_per_model(monkeypatch):
    monkeypatch.setitem(_BUILTIN_BACKENDS, "capsmixed", f"{__name__}:MixedBackend")
    loader = ModelLoader(parse_config("backends:\n  mix:\n    type: capsmixed\n"))
    answer = ModelRegistry(loader).available(probe=True)
    rows = {row["name"]: row for row in answer["backends"]["mix"]["models"]}
    assert "capabilities" not in rows["local-1"]  # as its backend: not repeated
    assert rows["served-1"]["capabilities"]["downloads"] is False
    state = CatalogState()
    state.set_data(answer)
    state.selected = ("mix", "served-1")
    reason = state.download_block(downloading=lambda *_: False, problem=lambda _b: None)
    assert reason == "The Mixed backend does not download served-1: there is nothing to download."
    state.selected = ("mix", "local-1")  # listed, so installed: past the capability check
    reason = state.download_block(downloading=lambda *_: False, problem=lambda _b: None)
    assert reason == "local-1 is already installed."

    server = ServerState(loader_factory=lambda: loader)
    try:
        with pytest.raises(ApiError) as info:
            server.start_download(DownloadRequest(backend="mix", model="served-1"))
        assert info.value.status == 400
        assert "'mix' (capsmixed) does not download it: there is nothing" in info.value.message
    finally:
        server.close()
    final = DownloadManager(loader.get).start("mix", "served-1").wait(10)
    assert final.state == "failed" and "nothing to download" in (final.error or "")


def test_seed_is_refused_where_the_backend_declares_none(plugin_loader):
    backend = plugin_loader.get("plug")
    with pytest.raises(OptionError, match="the Caps plugin backend does not support seed"):
        backend.parse_options({"seed": 7})
    assert backend.parse_options({"temperature": 0}).temperature == 0


def test_the_backends_phase_not_its_status_text_paces_the_updates():
    backend = PhasedBackend()
    manager = DownloadManager(lambda _name: backend, throttle=60.0)
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def watch(status: Any) -> None:
        seen.append((status.phase, status.status))
        if status.finished:
            done.set()

    manager.subscribe(lambda download: download.subscribe(watch))
    manager.start("phases", "m")
    assert done.wait(10)
    phases = [phase for phase, _status in seen]
    # One update when "downloading" starts (not one per file), one for "verifying", the end.
    assert phases.count("downloading") == 1, seen
    assert ("verifying", "checking sums") in seen
    assert seen[-1][0] == "done"


# --- model names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend_type", "name", "valid"),
    [
        ("ollama", "llama3.2:1b", True),
        ("ollama", "library/llama3.2:latest", True),
        ("ollama", "a/b/c/d", False),
        ("ollama", "Bad Name!!", False),
        ("transformers", "HuggingFaceTB/SmolLM2-360M-Instruct", True),
        ("transformers", "smollm2-135m-instruct", True),
        ("transformers", "/models/My Model", True),  # an absolute path, spaces and all
        ("transformers", "./models/x", False),
        ("transformers", "a:b", False),
        ("gguf", "owner/repo/sub/file.gguf", True),
        ("gguf", "owner//file.gguf", False),
        ("openai", "gpt-4o-mini", True),
        ("openai", "gpt 4", False),
        ("anthropic", "claude\x00", False),
    ],
)
def test_each_backend_validates_its_own_names(backend_type, name, valid):
    backend = backend_class(backend_type)()
    if valid:
        assert backend.validate_model_name(name) == name
    else:
        with pytest.raises(ModelNameError):
            backend.validate_model_name(name)


def test_relative_paths_get_the_paths_answer():
    with pytest.raises(ModelNameError, match="is relative: give a model file or folder"):
        backend_class("gguf")().validate_model_name("../x.gguf")


def test_backends_say_when_two_names_are_one_model():
    ollama, transformers = backend_class("ollama")(), backend_class("transformers")()
    assert ollama.model_key("Llama3.2") == ollama.model_key("llama3.2:latest")
    assert transformers.model_key("Org/Model") != transformers.model_key("org/model")


# --- no front end or core module names a backend type -----------------------------------------

_TYPES = ("ollama", "transformers", "openai", "vllm", "tensorrt", "anthropic", "gguf")
_NAMED = re.compile(r"\b(" + "|".join(_TYPES) + r")\b", re.IGNORECASE)
_FRONT = ("core", "magics", "widgets", "server")


def _named_types(path: Path) -> list[str]:
    """String literals (docstrings aside) and identifiers that name a backend type."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = None if id(node) in docstrings else node.value
        elif isinstance(node, ast.Name):
            text = node.id
        elif isinstance(node, ast.Attribute):
            text = node.attr
        elif isinstance(node, ast.alias):
            text = node.name
        if text and _NAMED.search(text.replace("_", " ")):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {text[:80]!r}")
    return found


def test_no_front_end_or_core_module_names_a_backend_type():
    assert set(_TYPES) == set(_BUILTIN_BACKENDS)
    package = REPO / "localmind_jupyter"
    files = [f for part in _FRONT for f in sorted((package / part).rglob("*.py"))]
    assert len(files) > 20
    assert [hit for f in files for hit in _named_types(f)] == []
