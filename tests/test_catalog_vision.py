"""Finding a model that can see: the ``vision`` tag in the catalogs (each GGUF one with its
mmproj), the model manager's tag filter and ``%localmind models --tag vision`` (front ends
read tags, never backend types)."""

from __future__ import annotations

from localmind_jupyter.backends._gguf_files import is_projector_name, split_hub_name
from localmind_jupyter.backends.gguf import GGUFBackend
from localmind_jupyter.backends.transformers import TransformersBackend
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


def vision(catalog: str) -> list:
    return [e for e in load_catalog(catalog) if "vision" in e.tags]


def test_every_vision_gguf_entry_names_its_projector_in_the_same_repository() -> None:
    entries = vision("gguf")
    assert len(entries) >= 2, "small SmolVLM GGUF files are offered"
    for entry in entries:
        projector = entry.extra.get("mmproj")
        assert isinstance(projector, str), f"{entry.name} names no mmproj file"
        assert is_projector_name(projector) and "/" not in projector, projector
        assert split_hub_name(entry.name) is not None, "a Hub file, downloaded with its projector"
    for entry in load_catalog("gguf"):
        if "vision" not in entry.tags:
            assert "mmproj" not in entry.extra, f"{entry.name}: a projector on a text model"


def test_smolvlm_models_are_offered_to_the_transformers_backend() -> None:
    names = {e.name for e in vision("transformers")}
    assert {
        "HuggingFaceTB/SmolVLM-256M-Instruct",
        "HuggingFaceTB/SmolVLM-500M-Instruct",
        "HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
    } <= names
    assert all(e.size and e.parameters and e.license for e in vision("transformers"))


def test_catalog_vision_models_see_before_they_are_downloaded(tmp_path) -> None:
    """The capability a front end reads (and the early refusal) holds before the download."""
    transformers = TransformersBackend({"hub_cache_dir": str(tmp_path)})
    gguf = GGUFBackend({"hub_cache_dir": str(tmp_path)})
    for entry in vision("transformers"):
        assert transformers.model_capabilities(entry.name).images, entry.name
    for entry in vision("gguf"):
        assert gguf.model_capabilities(entry.name).images, entry.name
    text = next(e for e in load_catalog("transformers") if "vision" not in e.tags)
    assert not transformers.model_capabilities(text.name).images
