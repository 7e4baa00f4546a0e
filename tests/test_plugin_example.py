"""``docs/plugins.md``'s example backend, taken verbatim from the doc, works as it says.

In-process first (streaming, stats, stop strings, cancel, errors); then pip-installed as
a throwaway distribution with its ``localmind.backends`` entry point and driven through
the magic in a real kernel and through the REST API, with no front-end change.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from localmind_jupyter.errors import ModelNotFound, OptionError
from tests.conftest import REPO

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def documented_example() -> str:
    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "the plugin guide should show one Python example"
    return blocks[0]


def test_the_example_is_a_whole_backend_of_at_most_40_lines():
    assert len(documented_example().splitlines()) <= 40


@pytest.fixture
def echo():
    module = types.ModuleType("echo_example")
    exec(compile(documented_example(), "docs/plugins.md", "exec"), module.__dict__)
    return module.EchoBackend(name="parrots")


def test_the_example_streams_with_stats(echo):
    stream = echo.generate_stream("hello plugin world", "parrot")
    assert list(stream) == ["hello ", "plugin ", "world "]
    r = stream.response
    assert (r.text, r.model, r.backend, r.finish_reason) == (
        "hello plugin world ",
        "parrot",
        "parrots",
        "stop",
    )
    assert (r.prompt_tokens, r.completion_tokens, r.tokens_approximate) == (3, 3, False)
    assert 0 < r.time_to_first_token <= r.duration
    assert r.tokens_per_second and r.tokens_per_second > 0
    assert echo.generate("one two", "parrot", max_tokens=1).text == "one "


def test_the_base_cuts_the_example_at_stop_strings(echo):
    r = echo.generate("say stop now please", "parrot", stop="now")
    assert (r.text, r.finish_reason) == ("say stop ", "stop")


def test_the_example_cancels(echo):
    with echo.generate_stream("a b c d e f", "parrot") as stream:
        assert next(stream) == "a "
    r = stream.response
    assert (r.finish_reason, r.text, r.completion_tokens, r.tokens_approximate) == (
        "cancelled",
        "a ",
        1,
        True,
    )


def test_the_example_fails_clearly_at_call_time(echo):
    with pytest.raises(ModelNotFound, match="no model 'crow' in Echo; try 'parrot'"):
        echo.generate_stream("hi", "crow")
    with pytest.raises(OptionError, match="temperature must be between 0 and 2, got 5"):
        echo.generate_stream("hi", "parrot", temperature=5)
    with pytest.raises(OptionError, match="unknown option"):
        echo.generate_stream("hi", "parrot", temprature=0.5)


PYPROJECT = textwrap.dedent(
    """
    [build-system]
    requires = ["setuptools"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "echo-plugin-example"
    version = "1.0"

    [project.entry-points."localmind.backends"]
    echo = "echo_plugin_example:EchoBackend"

    [tool.setuptools]
    py-modules = ["echo_plugin_example"]
    """
)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The example as a distribution of its own, pip-installed into a throwaway folder.

    ``--target`` rather than the shared virtualenv: other test processes using that
    environment never see a backend type appear and vanish under them.
    """
    root = tmp_path_factory.mktemp("echo-plugin")
    dist, site = root / "dist", root / "site"
    dist.mkdir()
    (dist / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (dist / "echo_plugin_example.py").write_text(documented_example(), encoding="utf-8")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    subprocess.run(
        [*pip, "--no-build-isolation", "--target", str(site), str(dist)],
        check=True,
        timeout=120,
        cwd=root,
    )
    assert list(site.glob("echo_plugin_example-1.0.dist-info/entry_points.txt"))
    return site


CONFIG = "default_model: parrots:parrot\nbackends:\n  parrots:\n    type: echo\n"


@pytest.fixture
def echo_kernel(isolated_home: Path, plugin_site: Path) -> Iterator:
    from tests.test_magic_kernel import Kernel

    (isolated_home / "config.yaml").write_text(CONFIG, encoding="utf-8")
    k = Kernel(isolated_home)
    try:
        k.run(f"import sys; sys.path.insert(0, {str(plugin_site)!r})")  # as if pip-installed
        k.run("%load_ext localmind_jupyter")
        yield k
    finally:
        k.stop()


def test_the_installed_example_streams_through_the_magic(echo_kernel):
    from tests.test_magic_kernel import answer_messages, of_type

    messages = echo_kernel.run("%%localmind\nhello plugin world")
    assert not of_type(messages, "error")
    final = [m for m in answer_messages(messages) if m["msg_type"] == "update_display_data"][-1]
    assert final["content"]["data"]["text/plain"] == "hello plugin world "
    meta = final["content"]["metadata"]["localmind"]
    assert meta["backend"] == "parrots" and meta["stats"]["completion_tokens"] == 3
    assert meta["stats"]["finish_reason"] == "stop" and meta["stopped"] is False
    footer = of_type(messages, "display_data")[-1]["content"]["data"]["text/plain"]
    assert footer.startswith("parrots:parrot · 3 tokens")


def test_the_installed_example_stops_on_an_interrupt_and_fails_clearly(echo_kernel):
    from tests.test_magic_kernel import answer_messages, of_type

    def interrupt_after_some_words(msg: dict) -> None:
        text = msg["content"].get("data", {}).get("text/plain", "")
        if msg["msg_type"] == "update_display_data" and not asked and text.count(" ") >= 5:
            asked.append(True)
            echo_kernel.manager.interrupt_kernel()

    asked: list[bool] = []
    words = " ".join(f"w{i}" for i in range(500))  # 5 s at the example's pace
    messages = echo_kernel.run(f"%%localmind\n{words}", on_message=interrupt_after_some_words)
    assert asked and not of_type(messages, "error"), "the interrupt became a traceback"
    final = [m for m in answer_messages(messages) if m["msg_type"] == "update_display_data"][-1]
    meta = final["content"]["metadata"]["localmind"]
    assert meta["stopped"] is True and meta["stats"]["finish_reason"] == "cancelled"
    assert final["content"]["data"]["text/plain"].startswith("w0 w1 w2 w3 w4 ")

    messages = echo_kernel.run("%%localmind parrots:crow\nhi")
    assert not of_type(messages, "error")
    texts = [
        m["content"]["data"]["text/plain"]
        for m in of_type(messages, "display_data", "update_display_data")
    ]
    assert any("no model 'crow' in Echo; try 'parrot'" in t for t in texts), texts


@pytest.fixture
def jp_server_config(isolated_home: Path, plugin_site: Path) -> Iterator:
    """A Jupyter server whose process has the example installed, configured to use it."""
    from traitlets.config import Config

    from localmind_jupyter.backends import refresh_backend_types

    (isolated_home / "config.yaml").write_text(CONFIG, encoding="utf-8")
    sys.path.insert(0, str(plugin_site))
    refresh_backend_types()
    try:
        yield Config({"ServerApp": {"jpserver_extensions": {"localmind_jupyter": True}}})
    finally:
        sys.path.remove(str(plugin_site))
        sys.modules.pop("echo_plugin_example", None)
        refresh_backend_types()


async def test_the_installed_example_answers_through_the_rest_api(jp_fetch):
    import json

    chunks: list[bytes] = []
    response = await jp_fetch(
        "localmind",
        "api",
        "generate",
        method="POST",
        body=json.dumps({"prompt": "hello plugin world", "model": "parrots:parrot"}),
        streaming_callback=chunks.append,
    )
    assert response.code == 200
    lines = [json.loads(line) for line in b"".join(chunks).splitlines() if line.strip()]
    assert lines[0] == {"type": "start", "backend": "parrots", "model": "parrot"}
    assert [line["text"] for line in lines if line["type"] == "text"] == [
        "hello ",
        "plugin ",
        "world ",
    ]
    stats = lines[-1]["response"]
    assert lines[-1]["type"] == "done" and stats["completion_tokens"] == 3
    assert stats["prompt_tokens"] == 3 and stats["finish_reason"] == "stop"

    response = await jp_fetch(
        "localmind",
        "api",
        "generate",
        method="POST",
        body=json.dumps({"prompt": "hi", "model": "parrots:crow"}),
        raise_error=False,
    )
    body = json.loads(response.body)
    assert response.code == 404, body
    assert "no model 'crow' in Echo; try 'parrot'" in body["message"]
