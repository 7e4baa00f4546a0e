"""The answer log with images: rows hold each image's metadata (size, format, hash), never
its bytes; the cache key holds the hashes, so another image is another request.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from localmind_jupyter import secrets
from localmind_jupyter.backends import Capabilities
from localmind_jupyter.core._log_rows import canonical, request_options
from localmind_jupyter.core.answer_log import AnswerLog, request_key
from localmind_jupyter.core.images import to_image
from localmind_jupyter.paths import log_path

from .scripted_backend import ScriptedBackend


class SeeingBackend(ScriptedBackend):
    type_name = "seeing"
    display_name = "Seeing"
    capabilities = Capabilities(downloads=False, images=True)


def photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _raw_log() -> bytes:
    return b"".join(
        Path(f"{log_path()}{suffix}").read_bytes()
        for suffix in ("", "-wal", "-shm")
        if Path(f"{log_path()}{suffix}").exists()
    )


def test_same_prompt_other_image_is_another_key_and_the_same_image_the_same_key():
    backend = SeeingBackend()
    first, second = photo(1), photo(2)
    key_a = request_key("b", backend.build_request("what is it?", "m", images=[first]))
    key_b = request_key("b", backend.build_request("what is it?", "m", images=[second]))
    assert key_a != key_b
    # The same picture again, read anew and under another name: the same request.
    again = to_image(bytearray(first), "holiday.png")
    assert request_key("b", backend.build_request("what is it?", "m", images=[again])) == key_a
    # Two images are not one; their order counts.
    both = request_key("b", backend.build_request("what is it?", "m", images=[first, second]))
    swapped = request_key("b", backend.build_request("what is it?", "m", images=[second, first]))
    assert len({key_a, both, swapped}) == 3
    # No image at all is a third request, keyed exactly as before images existed.
    plain = backend.build_request("what is it?", "m")
    old_payload = {
        "backend": "b",
        "model": "m",
        "messages": plain.chat_messages(),
        "options": request_options(plain),
    }
    old_key = hashlib.sha256(canonical(old_payload).encode("utf-8")).hexdigest()
    assert request_key("b", plain) == old_key != key_a


def test_images_in_earlier_turns_are_in_the_key():
    backend = SeeingBackend()

    def history(image: bytes) -> list[dict[str, object]]:
        return [
            {"role": "user", "content": "look", "images": [image]},
            {"role": "assistant", "content": "ok"},
        ]

    keys = {
        request_key("b", backend.build_request("more?", "m", messages=history(im)))
        for im in (photo(1), photo(2))
    }
    assert len(keys) == 2


def test_the_log_keeps_metadata_never_bytes_and_serves_only_the_same_image():
    log = AnswerLog(log_path())
    backend = SeeingBackend()
    backend.script = ["a red blur"]
    backend.answer_sink = log.record
    first = to_image(photo(1), "fig")
    prepared = first.prepared()
    history = [
        {"role": "user", "content": "before", "images": [to_image(photo(3), "old")]},
        {"role": "assistant", "content": "noted"},
    ]
    backend.generate("what is [image 1]?", "m", images=[first], messages=history)
    (row,) = log.entries()
    meta = first.metadata()
    assert row["options"]["images"] == [meta]
    assert row["messages"][-1] == {
        "role": "user",
        "content": "what is [image 1]?",
        "images": [meta],
    }
    assert row["messages"][0]["images"][0]["label"] == "old"
    assert set(meta) == {"label", "width", "height", "format", "bytes", "sha256"}
    raw = _raw_log()
    for blob in (first.data, prepared.data):
        assert blob[100:164] not in raw
        assert base64.b64encode(blob)[200:264] not in raw
    # The cache: the same image answers from the log, another image does not.
    same = backend.build_request(
        "what is [image 1]?", "m", images=[to_image(photo(1), "x")], messages=history
    )
    cached = log.cached("seeing", same)
    assert cached is not None and cached.text == "a red blur"
    other = backend.build_request("what is [image 1]?", "m", images=[photo(2)], messages=history)
    assert log.cached("seeing", other) is None


@pytest.fixture
def registry() -> Iterator[None]:
    """A secret registered here must not stay known to later tests."""
    saved = secrets._REGISTRY.snapshot()
    yield
    secrets._REGISTRY.restore(saved)


def test_a_secret_in_an_image_label_is_redacted_in_the_log(registry: None):
    secret = "sk-image-label-0123456789abcdef"
    secrets.register(secret)
    log = AnswerLog(log_path())
    backend = SeeingBackend()
    backend.script = ["ok"]
    backend.answer_sink = log.record
    backend.generate("x", "m", images=[to_image(photo(1), f"/data/{secret}/a.png")])
    (row,) = log.entries()
    assert secret not in str(row["options"]) and secret not in str(row["messages"])
    assert "****" in row["options"]["images"][0]["label"]
    assert secret.encode() not in _raw_log()
