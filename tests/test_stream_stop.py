"""What the docs say about stopping a stream is what a server sees.

``close()``, a ``with`` block or dropping the stream stops the source; leaving a ``for``
loop early while the stream is still held does not (it can be read on). The Ollama
loopback server tells when the client hung up.
"""

from __future__ import annotations

import re

from localmind_jupyter.backends.ollama import OllamaBackend
from tests.conftest import REPO

LONG = " ".join(f"w{i}" for i in range(60))
FULL = f"You said: {LONG}"


def _documented_with_example() -> str:
    text = (REPO / "docs" / "backends.md").read_text(encoding="utf-8")
    section = text.split("## Streaming and stopping", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the streaming section should show one Python example"
    return blocks[0]


def test_the_documented_with_block_stops_the_server(ollama_server):
    ollama_server.token_delay = 0.05
    ollama_server.reply_pieces = [f"p{i} " for i in range(5)] + ["END "] + ["more "] * 54
    backend = OllamaBackend({"base_url": ollama_server.url})
    namespace = {"backend": backend, "prompt": "go", "model": "smollm:135m"}
    exec(_documented_with_example(), namespace)  # our own docs
    stream = namespace["stream"]  # still held after the block
    assert ollama_server.disconnected.wait(3), "the server kept generating"
    assert ollama_server.chunks_sent < 20
    assert stream.response.finish_reason == "cancelled"
    assert stream.response.text == "p0 p1 p2 p3 p4 END "


def test_leaving_the_loop_while_holding_the_stream_does_not_stop_it(ollama_server):
    ollama_server.token_delay = 0.01
    stream = OllamaBackend({"base_url": ollama_server.url}).generate_stream(LONG, "smollm:135m")
    got = []
    for piece in stream:
        got.append(piece)
        if len(got) == 2:
            break
    assert not ollama_server.disconnected.wait(0.2)
    rest = "".join(stream)  # read on, where the loop left off
    assert "".join(got) + rest == FULL
    assert stream.response.finish_reason == "stop"


def test_the_readme_example_uses_with():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = readme.split("## Python in ten lines", 1)[1].split("```", 2)[1]
    assert 'with backend.generate_stream("What is the capital of France?", model) as ' in (example)
    assert "stream.response" in example
