"""The model registry: catalogs merged with installed models, in the seed's API shape."""

from __future__ import annotations

import pytest

from localmind_jupyter.backends import _BUILTIN_BACKENDS
from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.config import parse_config
from localmind_jupyter.core.model_loader import ModelLoader
from localmind_jupyter.core.model_registry import (
    ModelRegistry,
    human_size,
    load_catalog,
    merge_models,
)
from tests.conftest import REPO, free_port

CATALOG_DIR = REPO / "localmind_jupyter" / "catalogs"


def registry_for(text: str) -> ModelRegistry:
    return ModelRegistry(ModelLoader(parse_config(text)))


CATALOG_TYPES = sorted(p.stem for p in CATALOG_DIR.glob("*.yaml"))


def test_catalogs_exist_for_backends_that_offer_models():
    assert {"ollama", "transformers", "openai", "anthropic"} <= set(CATALOG_TYPES)
    assert set(CATALOG_TYPES) <= set(_BUILTIN_BACKENDS), "a catalog for no backend type"


@pytest.mark.parametrize("backend_type", CATALOG_TYPES)
def test_shipped_catalogs_are_valid(backend_type):
    entries = load_catalog(backend_type)
    assert entries, f"empty catalog for {backend_type}"
    names = [e.name for e in entries]
    assert len(names) == len(set(names)), "duplicate names"
    for entry in entries:
        assert entry.description and len(entry.description) < 120
        assert entry.tags and all(isinstance(t, str) and t == t.lower() for t in entry.tags)
        assert entry.size is None or (isinstance(entry.size, int) and entry.size > 1_000_000)
        if "remote" not in entry.tags:
            assert entry.size, f"{entry.name} has no size"
        if backend_type == "ollama":
            assert ":" in entry.name, "Ollama catalog names carry their tag"


def test_available_has_the_seed_shape(ollama_server):
    result = registry_for(
        f"backends:\n  ollama:\n    settings: {{base_url: '{ollama_server.url}'}}\n"
    ).available()
    assert result["status"] == "ok"
    entry = result["backends"]["ollama"]
    assert set(entry) == {"info", "models", "installed"}
    assert entry["installed"] == ["smollm:135m", "qwen2.5:0.5b"]
    info = entry["info"]
    assert info["available"] is True and info["reason"] is None
    assert info["base_url"] == ollama_server.url and info["version"]
    by_name = {m["name"]: m for m in entry["models"]}
    # In the catalog and installed: installed badge, size from the server.
    assert by_name["qwen2.5:0.5b"]["installed"] and by_name["qwen2.5:0.5b"]["in_catalog"]
    assert by_name["qwen2.5:0.5b"]["size"] == 397_821_319
    # Installed but not in the catalog: still listed, described from Ollama's details.
    assert by_name["smollm:135m"]["installed"] and not by_name["smollm:135m"]["in_catalog"]
    assert "llama" in by_name["smollm:135m"]["description"]
    # Catalog only: offered with size, not installed.
    assert not by_name["llama3.2:1b"]["installed"]
    assert by_name["llama3.2:1b"]["size_human"] == "1.3 GB"
    flags = [m["installed"] for m in entry["models"]]
    assert flags == sorted(flags, reverse=True), "installed models come first"


def test_unavailable_backend_is_listed_with_reason_and_catalog():
    dead = f"http://127.0.0.1:{free_port()}"
    result = registry_for(
        f"backends:\n  ollama:\n    settings: {{base_url: '{dead}'}}\n"
    ).available()
    entry = result["backends"]["ollama"]
    assert result["status"] == "ok"
    assert entry["info"]["available"] is False
    assert "connection refused" in entry["info"]["reason"]
    assert entry["installed"] == []
    assert entry["models"] and not any(m["installed"] for m in entry["models"])


def test_disabled_and_broken_backends_are_listed():
    result = registry_for(
        "backends:\n  openai:\n    enabled: false\n  odd:\n    type: nothing\n"
    ).available()
    assert "enabled: true" in result["backends"]["openai"]["info"]["reason"]
    assert "unknown backend type 'nothing'" in result["backends"]["odd"]["info"]["reason"]


def test_models_of_one_backend(ollama_server):
    registry = registry_for(
        f"backends:\n  ollama:\n    settings: {{base_url: '{ollama_server.url}'}}\n"
    )
    names = [m["name"] for m in registry.models("ollama") if m["installed"]]
    assert names == ["qwen2.5:0.5b", "smollm:135m"]


def test_merge_treats_latest_tag_and_case_as_ollama_does():
    catalog = load_catalog("ollama")
    key = OllamaBackend().model_key  # the backend says when two names are one model
    rows = merge_models(catalog, [{"name": "Nomic-Embed-Text:latest", "size": 5}], key)
    match = [r for r in rows if r["installed"]]
    assert len(match) == 1 and match[0]["in_catalog"]


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "—"), (512, "512 B"), (93_000_000, "93.0 MB"), (1_300_000_000, "1.3 GB")],
)
def test_human_size(size, text):
    assert human_size(size) == text


def test_catalogs_are_worth_browsing():
    assert len(load_catalog("ollama")) >= 30
    transformers = load_catalog("transformers")
    assert len(transformers) >= 10
    assert transformers[0].name == "smollm2-135m-instruct", "the bundled model comes first"
    assert all(e.license for e in transformers), "every Hub model carries a licence note"


def test_an_openai_type_backend_at_a_local_server_offers_no_openai_models(openai_server):
    registry = registry_for(
        "backends:\n  local:\n    type: openai\n"
        f"    settings: {{base_url: '{openai_server.base_url}', api_key: sk-test-secret-123456}}\n"
    )
    names = [m["name"] for m in registry.available()["backends"]["local"]["models"]]
    assert names == ["gpt-test", "smol-chat"], "only what the server serves"
