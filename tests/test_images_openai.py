"""Images on the OpenAI-compatible backends, on the wire: ``image_url`` parts with data URLs.

The official ``openai`` client talks to the loopback server, which reads the content parts
as the real API does, refuses what it refuses, and answers what it sees; each test reads
back the parts the server received: their order, MIME type and decoded size.
"""

from __future__ import annotations

import pytest

from localmind_jupyter.backends.openai import OpenAIBackend, VLLMBackend
from localmind_jupyter.errors import BackendUnavailable, GenerationError, OptionError
from tests.conftest import free_port
from tests.image_samples import ORANGE, drawing, from_data_url, photo

KEY = "sk-test-secret-123456"


def backend(server, cls: type[OpenAIBackend] = OpenAIBackend, **settings: object):
    return cls({"base_url": server.base_url, "api_key": KEY, **settings})


def chats(server) -> list[dict]:
    return [r[3] for r in server.requests if r[1].endswith("/chat/completions")]


def parts(server, index: int = -1) -> list:
    """The last request's message ``index`` content: text, or (mime, size) per image."""
    content = chats(server)[-1]["messages"][index]["content"]
    if isinstance(content, str):
        return [content]
    out: list = []
    for part in content:
        if part["type"] == "text":
            out.append(part["text"])
        else:
            mime, image = from_data_url(part["image_url"]["url"])
            out.append((mime, image.size))
    return out


def test_parts_follow_the_markers_and_images_are_downscaled_to_2048(openai_server):
    prompt = "before [image 1] middle [image 2] after"
    answer = backend(openai_server).generate(
        prompt, "gpt-test", images=[drawing(3000, 1000), drawing(100, 50, ORANGE)]
    )
    assert parts(openai_server) == [
        "before ",
        ("image/png", (2048, 683)),
        " middle ",
        ("image/png", (100, 50)),
        " after",
    ]
    assert answer.text == (
        "I see 2 images. Image 1 is 2048×683; the background is white and its most common "
        "other colour is blue (#1f77b4). Image 2 is 100×50; the background is white and its "
        "most common other colour is orange (#ff7f0e)."
    )


def test_images_no_marker_names_go_first_and_photos_go_as_jpeg(openai_server):
    backend(openai_server, image_max_edge=640).generate(
        "What is in it?", "gpt-test", images=[photo(1280, 960)]
    )
    assert parts(openai_server) == [("image/jpeg", (640, 480)), "What is in it?"]


def test_history_turns_keep_their_images_on_the_next_request(openai_server):
    history = [
        {"role": "user", "content": "Look: [image 1]", "images": [drawing(64, 32)]},
        {"role": "assistant", "content": "A blue block."},
    ]
    backend(openai_server).generate("Bigger?", "gpt-test", system="be brief", messages=history)
    sent = chats(openai_server)[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert parts(openai_server, 1) == ["Look: ", ("image/png", (64, 32))]
    assert sent[2]["content"] == "A blue block." and sent[3]["content"] == "Bigger?"


def test_text_requests_still_send_plain_string_content(openai_server):
    backend(openai_server).generate("hello", "gpt-test")
    assert chats(openai_server)[-1]["messages"] == [{"role": "user", "content": "hello"}]


def test_vision_models_setting_refuses_the_others_before_sending(openai_server):
    openai = backend(openai_server, vision_models=["gpt-*"])
    assert openai.model_capabilities("gpt-test").images is True
    assert openai.model_capabilities("smol-chat").images is False
    with pytest.raises(OptionError, match="'smol-chat' on OpenAI-compatible cannot read images"):
        openai.generate("x", "smol-chat", images=[drawing(16, 16)])
    assert chats(openai_server) == []
    assert openai.generate("x", "gpt-test", images=[drawing(16, 16)]).text.startswith("I see")


def test_a_self_hosted_server_tries_unknown_models_unless_vision_models_is_set(openai_server):
    vllm = backend(openai_server, VLLMBackend)
    assert vllm.model_capabilities("smol-chat").images is True  # cannot tell: the server decides
    assert vllm.generate("x", "smol-chat", images=[drawing(16, 16)]).text.startswith("I see")
    strict = backend(openai_server, VLLMBackend, vision_models=["Qwen/*-VL-*"])
    with pytest.raises(OptionError, match="cannot read images"):
        strict.generate("x", "smol-chat", images=[drawing(16, 16)])
    assert len(chats(openai_server)) == 1


def test_the_servers_text_only_answer_is_the_same_refusal_and_is_remembered(openai_server):
    openai_server.text_only = {"smol-chat"}
    openai = backend(openai_server)
    with pytest.raises(OptionError, match="'smol-chat' on OpenAI-compatible cannot read images"):
        openai.generate("x", "smol-chat", images=[drawing(16, 16)])
    assert len(chats(openai_server)) == 1
    with pytest.raises(OptionError, match="cannot read images"):
        openai.generate("x", "smol-chat", images=[drawing(16, 16)])
    assert len(chats(openai_server)) == 1  # refused before sending the second time
    assert openai.generate("text still works", "smol-chat").text == "You said: text still works"


def test_openais_own_api_knows_its_vision_models_without_asking():
    cloud = OpenAIBackend({"api_key": KEY})  # api.openai.com: nothing is sent in this test
    sees = {name: cloud.model_capabilities(name).images for name in (
        "gpt-4o", "gpt-4o-mini", "gpt-4.1-nano", "gpt-5", "o3", "o4-mini",
        "gpt-3.5-turbo", "gpt-4", "o3-mini", "davinci-002",
    )}  # fmt: skip
    assert [name for name, yes in sees.items() if yes] == [
        "gpt-4o", "gpt-4o-mini", "gpt-4.1-nano", "gpt-5", "o3", "o4-mini",
    ]  # fmt: skip
    with pytest.raises(OptionError, match=r"'gpt-3\.5-turbo' on OpenAI-compatible cannot read"):
        cloud.generate("x", "gpt-3.5-turbo", images=[drawing(16, 16)])


def test_an_image_the_server_cannot_read_is_a_clear_error_without_the_key(openai_server):
    openai_server.images_undecodable = True
    openai_server.echo_credentials = True  # a careless proxy quoting the request's headers
    with pytest.raises(GenerationError, match="could not read an image") as info:
        backend(openai_server).generate("x", "gpt-test", images=[drawing(16, 16)])
    message = str(info.value)
    assert "HTTP 400" in message and "unsupported image" in message
    assert "image_max_edge" in message
    assert KEY not in message and KEY not in repr(info.value)


def test_a_dropped_stream_of_an_image_request_keeps_the_partial_answer(openai_server):
    openai_server.drop_after = 3
    received: list[str] = []
    stream = backend(openai_server).generate_stream("x", "gpt-test", images=[drawing(64, 48)])
    with pytest.raises(GenerationError, match="dropped mid-answer") as info:
        for piece in stream:
            received.append(piece)
    assert "".join(received) == info.value.partial_text == "I see a "


def test_server_down_with_an_image():
    down = OpenAIBackend({"base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key": KEY})
    with pytest.raises(BackendUnavailable, match="cannot reach") as info:
        down.generate("x", "gpt-test", images=[drawing(16, 16)])
    assert KEY not in str(info.value)
