"""Images on the Ollama backend, on the wire: ``images`` (base64) on the user message.

The backend talks to the loopback Ollama server over HTTP (httpx, not mocked); the server
decodes what arrived, and its vision model answers what it sees, so every test checks the
bytes the server received: their size, format and place in the conversation.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localmind_jupyter.backends.ollama import OllamaBackend
from localmind_jupyter.errors import BackendUnavailable, GenerationError, OptionError
from tests.conftest import free_port
from tests.image_samples import drawing, from_base64, photo
from tests.servers.ollama_server import FakeModel, OllamaTestServer, default_models, vision_model

VISION = "llava:7b"
WIDE = "I see a 2048×683 image; the background is white and its most common other colour is "


@pytest.fixture
def server() -> Iterator[OllamaTestServer]:
    models = [*default_models(), vision_model(), FakeModel("mystery:1b")]
    with OllamaTestServer(models=models) as srv:
        yield srv


def backend(server: OllamaTestServer, **settings: object) -> OllamaBackend:
    return OllamaBackend({"base_url": server.url, **settings})


def chats(server: OllamaTestServer) -> list[dict]:
    return [body for _m, path, body in server.requests if path == "/api/chat"]


def shows(server: OllamaTestServer) -> int:
    return sum(path == "/api/show" for _m, path, _b in server.requests)


def test_an_image_goes_as_base64_on_the_user_message_downscaled_to_2048(server):
    answer = backend(server).generate("What is this?", VISION, images=[drawing(3000, 1000)])
    message = chats(server)[-1]["messages"][-1]
    assert message["role"] == "user" and message["content"] == "What is this?"
    (sent,) = message["images"]
    image = from_base64(sent)
    assert (image.format, image.size) == ("PNG", (2048, 683))
    # The vision model answered about the image it decoded, in several pieces.
    assert answer.text == WIDE + "blue (#1f77b4)."
    assert server.chunks_sent > 5


def test_the_image_max_edge_setting_is_honoured_and_photos_go_as_jpeg(server):
    backend(server, image_max_edge=512).generate("x", VISION, images=[photo(1200, 900)])
    image = from_base64(chats(server)[-1]["messages"][-1]["images"][0])
    assert (image.format, image.size) == ("JPEG", (512, 384))
    assert not image.info.get("exif")


def test_the_markers_stay_in_the_text_and_several_images_keep_their_order(server):
    prompt = "before [image 1] middle [image 2] after"
    images = [drawing(300, 100), drawing(40, 80)]
    answer = backend(server).generate(prompt, VISION, images=images)
    message = chats(server)[-1]["messages"][-1]
    assert message["content"] == prompt  # Ollama places the images itself
    assert [from_base64(b).size for b in message["images"]] == [(300, 100), (40, 80)]
    assert answer.text.startswith("I see 2 images. Image 1 is 300×100;")


def test_history_turns_keep_their_images_on_the_next_request(server):
    first = drawing(64, 64)
    history = [
        {"role": "user", "content": "Look at this", "images": [first]},
        {"role": "assistant", "content": "A blue square."},
    ]
    backend(server).generate("And now?", VISION, messages=history)
    messages = chats(server)[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert from_base64(messages[0]["images"][0]).size == (64, 64)
    assert "images" not in messages[1] and "images" not in messages[2]


def test_a_text_only_model_is_refused_before_the_chat_is_sent(server):
    with pytest.raises(OptionError, match="cannot read images") as info:
        backend(server).generate("What is this?", "smollm:135m", images=[drawing(32, 32)])
    message = str(info.value)
    assert "'smollm:135m'" in message and "vision" in message
    assert chats(server) == []  # only /api/show was asked
    assert shows(server) == 1


def test_show_is_asked_once_per_model_and_text_requests_never_ask(server):
    ollama = backend(server)
    ollama.generate("plain text", VISION)
    assert shows(server) == 0
    ollama.generate("one", VISION, images=[drawing(16, 16)])
    ollama.generate("two", VISION, images=[drawing(16, 16)])
    assert shows(server) == 1 and len(chats(server)) == 3
    assert ollama.model_capabilities(VISION).images is True
    assert ollama.model_capabilities("smollm:135m").images is True  # not asked yet: unknown


def test_an_old_server_without_capabilities_falls_back_to_the_catalog(server):
    server.lists_capabilities = False
    ollama = backend(server)
    # llava:7b is tagged vision in the catalog: sent.
    assert ollama.generate("x", VISION, images=[drawing(16, 16)]).text.startswith("I see a 16×16")
    # qwen2.5:0.5b is in the catalog without the tag: refused before sending.
    with pytest.raises(OptionError, match="cannot read images"):
        ollama.generate("x", "qwen2.5:0.5b", images=[drawing(16, 16)])
    assert len(chats(server)) == 1


def test_an_unknown_model_is_tried_and_the_servers_refusal_is_remembered(server):
    server.lists_capabilities = False  # nothing tells whether mystery:1b sees
    ollama = backend(server)
    with pytest.raises(OptionError, match="'mystery:1b' on Ollama cannot read images"):
        ollama.generate("x", "mystery:1b", images=[drawing(16, 16)])
    assert len(chats(server)) == 1  # it was tried: Ollama answered 500 "missing data ..."
    with pytest.raises(OptionError, match="cannot read images"):
        ollama.generate("x", "mystery:1b", images=[drawing(16, 16)])
    assert len(chats(server)) == 1  # the second time it is refused before sending


def test_an_image_the_server_cannot_decode_is_a_clear_error_and_not_resent(server):
    server.images_undecodable = True
    with pytest.raises(GenerationError, match="Ollama could not read an image") as info:
        backend(server).generate("x", VISION, images=[drawing(16, 16)])
    assert "image: unknown format" in str(info.value)
    assert not getattr(info.value, "retryable", False)
    assert len(chats(server)) == 1


def test_a_dropped_stream_of_an_image_request_keeps_the_partial_answer(server):
    server.drop_after = 4
    received: list[str] = []
    stream = backend(server).generate_stream("x", VISION, images=[drawing(640, 480)])
    with pytest.raises(GenerationError, match="dropped mid-answer") as info:
        for piece in stream:
            received.append(piece)
    assert len(received) == 4 and info.value.partial_text == "".join(received)
    assert "".join(received) == "I see a 640×480 "


def test_server_down_with_an_image_says_how_to_start_it():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable, match="Ollama is not running"):
        OllamaBackend({"base_url": url}).generate("x", VISION, images=[drawing(16, 16)])


def test_a_numpy_array_is_an_image(server):
    import numpy as np

    array = np.zeros((20, 30, 3), dtype=np.uint8)
    array[:, :, 2] = 255
    answer = backend(server).generate("x", VISION, images=[array])
    assert from_base64(chats(server)[-1]["messages"][-1]["images"][0]).size == (30, 20)
    assert answer.text == "I see a 30×20 image; its most common colour is pure blue (#0000ff)."


def test_a_figure_in_a_conversation_is_sent_again_with_the_next_prompt(server):
    from matplotlib.figure import Figure

    from localmind_jupyter.core.conversation import Conversation
    from localmind_jupyter.core.images import to_image

    figure = Figure(figsize=(30, 10), dpi=100)  # 3000×1000, a little less once cropped
    figure.add_subplot().bar([1, 2, 3], [3, 1, 2], width=0.9)
    image = to_image(figure, "fig")
    assert image.width > 2048
    size = (2048, round(image.height * 2048 / image.width))
    ollama = backend(server)
    first = ollama.generate("Explain this plot", VISION, images=[image])
    assert first.text == (
        f"I see a {size[0]}×{size[1]} image; the background is white and its most common "
        "other colour is blue (#1f77b4)."
    )
    chat = Conversation("ollama", VISION)
    chat.add("Explain this plot", first.text, images=[image])
    second = ollama.generate("Which bar is tallest?", VISION, messages=chat.messages)
    earlier, answer, new = chats(server)[-1]["messages"]
    assert from_base64(earlier["images"][0]).size == size
    assert (answer["content"], "images" in new) == (first.text, False)
    assert second.text == "You said: Which bar is tallest?"  # no image on the new turn
