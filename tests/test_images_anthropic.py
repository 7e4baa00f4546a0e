"""Images on the Anthropic backend, on the wire: base64 ``image`` blocks among the text.

The official ``anthropic`` client talks to the loopback Messages API, which checks each
block as the API does (media type, base64, 5 MiB of base64, the bytes matching the media
type) and answers what it sees; each test reads back the blocks the server received.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

anthropic = pytest.importorskip("anthropic")

from localmind_jupyter.backends.anthropic import AnthropicBackend  # noqa: E402
from localmind_jupyter.errors import (  # noqa: E402
    BackendUnavailable,
    GenerationError,
    OptionError,
)
from tests.conftest import free_port  # noqa: E402
from tests.image_samples import ORANGE, drawing, from_base64, photo  # noqa: E402
from tests.servers.anthropic_server import AnthropicTestServer  # noqa: E402

KEY = "sk-ant-test-images-0123456789"
CLAUDE = "claude-sonnet-4-6"


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[AnthropicTestServer]:
    with AnthropicTestServer(models=[CLAUDE, "claude-2.1"], api_key=KEY) as srv:
        yield srv


def backend(server: AnthropicTestServer, **settings: object) -> AnthropicBackend:
    return AnthropicBackend({"base_url": server.base_url, "api_key": KEY, **settings})


def sent(server: AnthropicTestServer) -> list[dict]:
    return [body for _m, path, _h, body in server.requests if path == "/v1/messages"]


def blocks(server: AnthropicTestServer, index: int = -1) -> list:
    """The last request's message ``index`` content: text, or (media type, size) per image."""
    content = sent(server)[-1]["messages"][index]["content"]
    if isinstance(content, str):
        return [content]
    out: list = []
    for block in content:
        if block["type"] == "text":
            out.append(block["text"])
        else:
            source = block["source"]
            assert source["type"] == "base64"
            out.append((source["media_type"], from_base64(source["data"]).size))
    return out


def test_blocks_follow_the_markers_and_images_are_downscaled_to_1568(server):
    prompt = "before [image 1] middle [image 2] after"
    answer = backend(server).generate(
        prompt, CLAUDE, images=[drawing(3000, 1000), drawing(90, 60, ORANGE)]
    )
    assert blocks(server) == [
        "before ",
        ("image/png", (1568, 523)),
        " middle ",
        ("image/png", (90, 60)),
        " after",
    ]
    assert answer.text.startswith("I see 2 images. Image 1 is 1568×523;")
    assert "orange (#ff7f0e)" in answer.text


def test_an_image_no_marker_names_goes_before_the_text(server):
    backend(server).generate("What is this?", CLAUDE, images=[drawing(64, 64)])
    assert blocks(server) == [("image/png", (64, 64)), "What is this?"]


def test_the_settings_change_the_limits_and_photos_go_as_jpeg(server):
    backend(server, image_max_edge=800).generate("x", CLAUDE, images=[photo(1600, 1200)])
    assert blocks(server)[0] == ("image/jpeg", (800, 600))
    backend(server, image_max_bytes=20_000).generate("x", CLAUDE, images=[photo(1600, 1200)])
    data = base64.b64decode(sent(server)[-1]["messages"][-1]["content"][0]["source"]["data"])
    assert len(data) <= 20_000


def test_a_large_photo_fits_the_apis_5_mib_of_base64_by_default(server):
    answer = backend(server).generate("x", CLAUDE, images=[photo(2400, 1800)])
    source = sent(server)[-1]["messages"][-1]["content"][0]["source"]
    assert source["media_type"] == "image/jpeg"
    assert len(source["data"]) <= 5 * 1024 * 1024
    assert from_base64(source["data"]).size == (1568, 1176)
    assert answer.text.startswith("I see a 1568×1176 image")


def test_history_turns_keep_their_images_and_system_stays_top_level(server):
    history = [
        {"role": "user", "content": "[image 1] Look", "images": [drawing(40, 20)]},
        {"role": "assistant", "content": "A blue block."},
    ]
    backend(server).generate("Again?", CLAUDE, system="be brief", messages=history)
    body = sent(server)[-1]
    assert body["system"] == "be brief"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert blocks(server, 0) == [("image/png", (40, 20)), " Look"]
    assert body["messages"][1]["content"] == "A blue block."
    assert body["messages"][2]["content"] == "Again?"


def test_a_model_before_claude_3_is_refused_before_sending(server):
    claude = backend(server)
    assert claude.model_capabilities(CLAUDE).images is True
    assert claude.model_capabilities("claude-2.1").images is False
    with pytest.raises(OptionError, match=r"'claude-2\.1' on Anthropic cannot read images"):
        claude.generate("x", "claude-2.1", images=[drawing(16, 16)])
    assert sent(server) == []


def test_an_image_the_api_cannot_process_is_a_clear_error_without_the_key(server):
    server.images_undecodable = True
    with pytest.raises(GenerationError, match="could not read an image") as info:
        backend(server).generate("x", CLAUDE, images=[drawing(16, 16)])
    message = str(info.value)
    assert "HTTP 400" in message and "Could not process image" in message
    assert KEY not in message
    assert len(sent(server)) == 1  # a 400 is not sent again


def test_a_dropped_stream_of_an_image_request_keeps_the_partial_answer(server):
    server.drop_after = 3
    received: list[str] = []
    stream = backend(server).generate_stream("x", CLAUDE, images=[drawing(64, 48)])
    with pytest.raises(GenerationError, match="dropped mid-answer") as info:
        for piece in stream:
            received.append(piece)
    assert "".join(received) == info.value.partial_text == "I see a "


def test_server_down_with_an_image():
    down = AnthropicBackend({"base_url": f"http://127.0.0.1:{free_port()}", "api_key": KEY})
    with pytest.raises(BackendUnavailable, match="cannot reach") as info:
        down.generate("x", CLAUDE, images=[drawing(16, 16)])
    assert KEY not in str(info.value)
