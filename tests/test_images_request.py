"""Images on a request: the ``images`` option, image turns in ``messages``, the refusal of a
text-only model before anything is sent, the per-backend limits, and the placement helper.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from localmind_jupyter.backends import Capabilities
from localmind_jupyter.backends._image_parts import marker, user_parts
from localmind_jupyter.backends.base import BackendSettings, BaseBackend
from localmind_jupyter.core.conversation import Conversation
from localmind_jupyter.core.images import ImageError, ImageInput, ImageLimits, to_image
from localmind_jupyter.errors import ConfigError, OptionError
from tests.scripted_backend import PlainBackend, ScriptedBackend

REPO = Path(__file__).resolve().parents[1]


class SeeingBackend(ScriptedBackend):
    """A backend whose models read images (what a vision engine declares)."""

    type_name = "seeing"
    display_name = "Seeing"
    capabilities = Capabilities(downloads=False, images=True)


def png(width: int = 8, height: int = 6, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_generate_takes_images_of_every_kind_and_labels_them_in_order():
    backend = SeeingBackend()
    array = np.zeros((4, 5, 3), dtype=np.uint8)
    answer = backend.generate("what is this?", "m", images=[png(), Image.new("L", (3, 3)), array])
    request = backend.sent[-1]
    assert answer.text == ""
    assert [im.label for im in request.images] == ["image 1", "image 2", "image 3"]
    assert [(im.width, im.height) for im in request.images] == [(8, 6), (3, 3), (5, 4)]
    assert all(isinstance(im, ImageInput) for im in request.images)
    # The new user turn carries them; the text-only view old backends read does not.
    turns = request.chat_turns()
    assert turns[-1]["images"] == request.images
    assert request.chat_messages() == [{"role": "user", "content": "what is this?"}]


def test_a_single_image_value_is_taken_as_a_list_of_one_and_an_image_input_keeps_its_label():
    backend = SeeingBackend()
    fig = to_image(png(), "fig")
    backend.generate("x", "m", images=fig)
    assert [im.label for im in backend.sent[-1].images] == ["fig"]
    assert backend.sent[-1].images[0] is fig


def test_a_bad_image_fails_before_sending_with_its_label():
    backend = SeeingBackend()
    with pytest.raises(ImageError, match=r"image 2 is empty"):
        backend.generate("x", "m", images=[png(), b""])
    with pytest.raises(OptionError, match="images must be a list"):
        backend.generate("x", "m", images=42)
    # Text is never taken for a path here (a REST body could name any file on the server).
    with pytest.raises(ImageError, match=r"image 1 is text, not an image; .*pathlib.Path"):
        backend.generate("x", "m", images=["/etc/hostname"])
    turns = [{"role": "user", "content": "a", "images": ["/etc/hostname"]}]
    with pytest.raises(ImageError, match=r"messages\[0\] image 1 is text"):
        backend.generate("x", "m", messages=turns)
    assert backend.sent == []


def test_a_text_only_model_is_refused_before_anything_is_sent():
    backend = PlainBackend()
    with pytest.raises(OptionError) as caught:
        backend.generate_stream("describe it", "tiny-text", images=[png()])
    message = str(caught.value)
    assert "'tiny-text' on Plain cannot read images" in message
    assert "pick a vision model" in message and "%localmind models --tag vision" in message
    assert backend.sent == []
    # The same model without images answers as before.
    backend.generate("describe it", "tiny-text")
    assert len(backend.sent) == 1


def test_images_in_earlier_turns_also_need_a_seeing_model():
    turns = [
        {"role": "user", "content": "look", "images": [png()]},
        {"role": "assistant", "content": "a red square"},
    ]
    with pytest.raises(OptionError, match="cannot read images"):
        PlainBackend().generate("and now?", "m", messages=turns)
    backend = SeeingBackend()
    backend.generate("and now?", "m", messages=turns)
    request = backend.sent[-1]
    seen = request.chat_turns()
    assert [t["role"] for t in seen] == ["user", "assistant", "user"]
    assert seen[0]["images"][0].label == "messages[0] image 1"
    assert "images" not in seen[1] and "images" not in seen[2]
    assert request.chat_messages()[0] == {"role": "user", "content": "look"}


def test_images_on_an_assistant_turn_are_refused():
    turns = [{"role": "assistant", "content": "a", "images": [png()]}]
    with pytest.raises(OptionError, match=r"messages\[0\] has images but its role is 'assistant'"):
        SeeingBackend().generate("x", "m", messages=turns)


def test_conversation_keeps_images_on_the_user_turn_within_max_turns():
    conversation = Conversation("seeing", "m", max_turns=2)
    first = to_image(png(colour=(1, 2, 3)), "fig")
    conversation.add("what is this?", "a square", images=[first])
    conversation.add("bigger?", "no")
    assert conversation.messages[0]["images"] == [first]
    assert "images" not in conversation.messages[2]
    # The history flows back into the next request, images and all.
    backend = SeeingBackend()
    backend.generate("third", "m", messages=list(conversation.messages))
    assert backend.sent[-1].chat_turns()[0]["images"] == [first]
    conversation.add("third", "yes")
    assert conversation.turns == 2
    assert all("images" not in t for t in conversation.messages)  # left with its turn


def test_image_limits_come_from_the_backend_and_its_settings():
    class Wide(SeeingBackend):
        type_name = "wide"
        default_image_limits = ImageLimits(max_edge=1568, max_bytes=5_000_000)

    assert Wide().image_limits == ImageLimits(max_edge=1568, max_bytes=5_000_000)
    assert Wide({"image_max_edge": 512}).image_limits == ImageLimits(512, 5_000_000)
    assert Wide({"image_max_bytes": 200_000}).image_limits.max_bytes == 200_000
    with pytest.raises(ConfigError, match=r"backends.wide.settings.image_max_edge: must be at"):
        Wide({"image_max_edge": 4})
    with pytest.raises(ConfigError, match=r"image_max_byts.*did you mean 'image_max_bytes'"):
        Wide({"image_max_byts": 4})


def test_every_backend_settings_schema_takes_the_image_settings():
    schemas = _all_subclasses(BackendSettings)
    assert len(schemas) >= 5
    for schema in schemas:
        built = schema(image_max_edge=1000)
        assert built.image_max_edge == 1000 and built.image_max_bytes is None
        assert dataclasses.replace(schema(), image_max_bytes=9999).image_max_bytes == 9999


def _all_subclasses(cls: type) -> list[type]:
    import localmind_jupyter.backends.anthropic
    import localmind_jupyter.backends.gguf
    import localmind_jupyter.backends.ollama
    import localmind_jupyter.backends.openai
    import localmind_jupyter.backends.transformers  # noqa: F401

    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def test_user_parts_put_each_image_where_its_marker_stood():
    one, two, three = (to_image(png(colour=(i, i, i)), f"im{i}") for i in (1, 2, 3))
    text = f"compare {marker(2)} with {marker(1)}, ignore [image 9]"
    parts = user_parts(text, [one, two, three])
    # The image no marker names goes first; the rest stand where their markers stood.
    assert parts == [three, "compare ", two, " with ", one, ", ignore [image 9]"]
    assert user_parts("plain", [one]) == [one, "plain"]
    assert user_parts(marker(1), [one]) == [one]
    assert user_parts("no images", []) == ["no images"]


def test_base_backend_default_limits():
    assert BaseBackend.default_image_limits == ImageLimits(2048, 5_000_000, ("png", "jpeg"))


def test_import_and_load_ext_import_no_imaging_library(isolated_home):
    """``import localmind_jupyter``, the magics and a request without images load no pillow.

    (Not measured after ``start_ipython()``: IPython's test shell imports them itself.)
    """
    script = (
        "import json, sys, localmind_jupyter\n"
        "import localmind_jupyter.magics.magic, localmind_jupyter.magics.compare_cell\n"
        "from localmind_jupyter.core.model_loader import ModelLoader\n"
        "from localmind_jupyter.core.images import is_image_value\n"
        "from localmind_jupyter.backends._request import GenerationRequest\n"
        "ModelLoader()\n"
        "GenerationRequest.build('hi', 'm', {'temperature': 0})\n"
        "assert not is_image_value(b'text') and is_image_value(b'\\x89PNG\\r\\n\\x1a\\n')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {"PYTHONPATH": str(REPO), "LOCALMIND_HOME": str(isolated_home), "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"PIL", "numpy", "matplotlib"}
