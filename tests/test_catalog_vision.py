"""Finding a model that can see: the ``vision`` tag in the catalogs, the model manager's tag
filter and ``%localmind models --tag vision`` (front ends read tags, never backend types)."""

from __future__ import annotations

import pytest

from localmind_jupyter.core.model_registry import load_catalog
from tests.test_magic_shell import ip, servers  # noqa: F401 - fixtures
from tests.test_widgets import config, dead_port, fresh_session  # noqa: F401 - fixtures

#: The common small vision models a user of Ollama pulls for "explain this plot".
OLLAMA_VISION = {
    "moondream:latest",
    "gemma3:4b",
    "granite3.2-vision:latest",
    "llava-phi3:latest",
    "qwen2.5vl:3b",
    "llava:7b",
    "minicpm-v:8b",
    "qwen2.5vl:7b",
    "llama3.2-vision:11b",
}


def test_ollama_catalog_tags_the_common_vision_models():
    tagged = {e.name for e in load_catalog("ollama") if "vision" in e.tags}
    assert tagged >= OLLAMA_VISION, sorted(OLLAMA_VISION - tagged)
    text_only = {"gemma3:1b", "llama3.2:1b", "smollm2:135m", "qwen2.5:0.5b"}
    assert not tagged & text_only


def test_model_manager_filters_on_the_vision_tag(config):  # noqa: F811
    pytest.importorskip("ipywidgets")
    from localmind_jupyter.widgets import ModelCatalog

    catalog = ModelCatalog()
    assert catalog.wait(10)
    catalog.backend = "ollama"
    assert "vision" in [value for _label, value in catalog.tag.options]
    catalog.tag.value = "vision"
    shown = {name for backend, name in catalog.visible()}
    assert shown >= OLLAMA_VISION
    assert all("vision" in catalog.model("ollama", name)["tags"] for name in shown)


def test_models_command_lists_vision_models(ip, servers, capsys):  # noqa: F811
    ip.run_line_magic("localmind", "models ollama --tag vision")
    out = capsys.readouterr().out
    for name in ("llava:7b", "qwen2.5vl:3b", "minicpm-v:8b", "gemma3:4b"):
        assert name in out
    assert "smollm2:135m" not in out and "gemma3:1b" not in out
