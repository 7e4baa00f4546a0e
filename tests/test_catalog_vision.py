"""The vision models of the shipped catalogs: tagged ``vision``, each GGUF one with its mmproj."""

from __future__ import annotations

from localmind_jupyter.backends._catalog import load_catalog
from localmind_jupyter.backends._gguf_files import is_projector_name, split_hub_name
from localmind_jupyter.backends.gguf import GGUFBackend
from localmind_jupyter.backends.transformers import TransformersBackend


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
