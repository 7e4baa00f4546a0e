"""The loopback servers take images in each API's wire shape and refuse bad ones as it does.

Raw HTTP here (the backends' own tests use the official clients): what each server accepts,
what a vision model answers about the image it received (the answer a teaching notebook
relies on), and the status and wording of each refusal.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.servers import _images
from tests.servers.anthropic_server import AnthropicTestServer
from tests.servers.ollama_server import OllamaTestServer, default_models, vision_model
from tests.servers.openai_server import OpenAITestServer

BLUE = (0x1F, 0x77, 0xB4)


def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = BLUE) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def figure_like() -> bytes:
    """A white canvas with a blue bar, as a plot looks: the background is skipped."""
    image = Image.new("RGB", (640, 480), (255, 255, 255))
    image.paste(BLUE, (100, 100, 300, 400))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ndjson_text(response: httpx.Response) -> str:
    import json

    lines = [json.loads(line) for line in response.text.splitlines() if line]
    return "".join(line.get("message", {}).get("content", "") for line in lines) + "".join(
        line.get("response", "") for line in lines
    )


# --- the answer -----------------------------------------------------------------------------


def test_the_description_depends_on_the_image():
    assert _images.describe([png(640, 480)]) == (
        "I see a 640×480 image; its most common colour is blue (#1f77b4)."
    )
    assert _images.describe([figure_like()]) == (
        "I see a 640×480 image; the background is white and its most common other colour is "
        "blue (#1f77b4)."
    )
    two = _images.describe([png(10, 10), png(20, 30, (255, 127, 14))])
    assert two == (
        "I see 2 images. Image 1 is 10×10; its most common colour is blue (#1f77b4). "
        "Image 2 is 20×30; its most common colour is orange (#ff7f0e)."
    )


# --- Ollama -----------------------------------------------------------------------------------


@pytest.fixture
def ollama() -> Iterator[OllamaTestServer]:
    with OllamaTestServer(models=[*default_models(), vision_model()]) as server:
        yield server


def test_ollama_lists_and_shows_the_vision_model(ollama):
    names = [m["name"] for m in httpx.get(ollama.url + "/api/tags").json()["models"]]
    assert "llava:7b" in names
    shown = httpx.post(ollama.url + "/api/show", json={"model": "llava:7b"}).json()
    assert shown["capabilities"] == ["completion", "vision"]
    text = httpx.post(ollama.url + "/api/show", json={"model": "smollm:135m"}).json()
    assert "vision" not in text["capabilities"]


def test_ollama_chat_images_reach_the_vision_model_in_several_pieces(ollama):
    body = {
        "model": "llava:7b",
        "messages": [{"role": "user", "content": "What is this?", "images": [b64(png(640, 480))]}],
    }
    response = httpx.post(ollama.url + "/api/chat", json=body)
    assert response.status_code == 200
    assert (
        ndjson_text(response) == "I see a 640×480 image; its most common colour is blue (#1f77b4)."
    )
    assert ollama.chunks_sent > 3
    turn = _images.turns("ollama", ollama.requests[-1][2])[-1]
    assert turn.text == "What is this?" and turn.images[0].width == 640


def test_ollama_generate_takes_images_too(ollama):
    body = {"model": "llava:7b", "prompt": "Describe", "images": [b64(png(32, 16))]}
    response = httpx.post(ollama.url + "/api/generate", json=body)
    assert response.status_code == 200
    assert ndjson_text(response).startswith("I see a 32×16 image")
    assert _images.turns("ollama", ollama.requests[-1][2])[0].images[0].height == 16


def test_ollama_refuses_bad_base64_a_text_model_and_an_unknown_format(ollama):
    bad = {"model": "llava:7b", "messages": [{"role": "user", "content": "x", "images": ["ab$d"]}]}
    answer = httpx.post(ollama.url + "/api/chat", json=bad)
    assert answer.status_code == 400
    assert answer.json() == {"error": "illegal base64 data at input byte 2"}

    text_only = {
        "model": "smollm:135m",
        "messages": [{"role": "user", "content": "x", "images": [b64(png())]}],
    }
    answer = httpx.post(ollama.url + "/api/chat", json=text_only)
    assert answer.status_code == 500
    assert answer.json() == {"error": "this model is missing data required for image input"}

    garbage = {"model": "llava:7b", "prompt": "x", "images": [b64(b"not an image")]}
    answer = httpx.post(ollama.url + "/api/generate", json=garbage)
    assert answer.status_code == 500
    assert "image: unknown format" in answer.json()["error"]


# --- OpenAI -----------------------------------------------------------------------------------


@pytest.fixture
def openai() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(models=["gpt-4o", "gpt-3.5-turbo"]) as server:
        server.text_only = {"gpt-3.5-turbo"}
        yield server


def _parts(url: str, detail: str | None = None) -> list[dict]:
    image: dict = {"url": url}
    if detail:
        image["detail"] = detail
    return [
        {"type": "text", "text": "before "},
        {"type": "image_url", "image_url": image},
        {"type": "text", "text": " after"},
    ]


def _chat(server: OpenAITestServer, model: str, content: list[dict]) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return httpx.post(server.base_url + "/chat/completions", json=body)


def test_openai_image_url_parts_are_read_in_order_and_described(openai):
    url = "data:image/png;base64," + b64(png(300, 200))
    answer = _chat(openai, "gpt-4o", _parts(url, "high"))
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == (
        "I see a 300×200 image; its most common colour is blue (#1f77b4)."
    )
    parts = _images.turns("openai", openai.requests[-1][3])[0].parts
    assert parts[0] == "before " and parts[2] == " after"
    image = parts[1]
    assert isinstance(image, _images.ReceivedImage)
    assert (image.width, image.height, image.declared, image.detail) == (
        300,
        200,
        "image/png",
        "high",
    )


def test_openai_refuses_what_the_api_refuses(openai):
    answer = _chat(openai, "gpt-3.5-turbo", _parts("data:image/png;base64," + b64(png())))
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == _images.NO_VISION_OPENAI

    answer = _chat(openai, "gpt-4o", _parts("data:image/png;base64,@@@"))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_value"
    assert "Expected a base64-encoded data URL" in answer.json()["error"]["message"]

    answer = _chat(openai, "gpt-4o", _parts("data:image/png;base64," + b64(b"text")))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_image_format"

    answer = _chat(openai, "gpt-4o", _parts("data:image/png;base64," + b64(png()), "ultra"))
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "messages[0].content[1].image_url.detail"


# --- Anthropic --------------------------------------------------------------------------------


@pytest.fixture
def claude() -> Iterator[AnthropicTestServer]:
    with AnthropicTestServer(models=["claude-sonnet-4-6"]) as server:
        yield server


def _messages(server: AnthropicTestServer, block: dict) -> httpx.Response:
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [block, {"type": "text", "text": "What?"}]}],
    }
    headers = {"anthropic-version": "2023-06-01"}
    return httpx.post(server.base_url + "/v1/messages", json=body, headers=headers)


def _block(media_type: str, data: str) -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def test_anthropic_image_blocks_are_described(claude):
    answer = _messages(claude, _block("image/png", b64(png(100, 50))))
    assert answer.status_code == 200
    assert answer.json()["content"][0]["text"] == (
        "I see a 100×50 image; its most common colour is blue (#1f77b4)."
    )
    turn = _images.turns("anthropic", claude.requests[-1][3])[0]
    assert turn.images[0].declared == "image/png" and turn.text == "What?"


def test_anthropic_refuses_bad_media_types_base64_and_mismatches(claude):
    answer = _messages(claude, _block("image/bmp", b64(png())))
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert message.startswith("messages.0.content.0.image.source.base64.media_type: Input should")

    answer = _messages(claude, _block("image/png", "%%%"))
    assert answer.json()["error"]["message"].endswith("invalid base64 data")

    answer = _messages(claude, _block("image/jpeg", b64(png())))
    assert "appears to be a image/png image" in answer.json()["error"]["message"]
