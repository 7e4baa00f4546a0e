"""``docs/plugins.md``'s example backend, taken verbatim from the doc, works as it says.

In-process first (streaming, stats, stop strings, cancel, errors); then pip-installed into
the virtualenv as a throwaway distribution with its ``localmind.backends`` entry point,
found by ``importlib.metadata`` like any plugin, and driven through the magic in a real
kernel, the widgets and the REST API, with no front-end change. The distribution is
installed once for this module and uninstalled at its end, whatever the tests did.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    cut = echo.generate("one two", "parrot", max_tokens=1)
    assert (cut.text, cut.finish_reason, cut.completion_tokens) == ("one ", "length", 1)


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


DIST = "localmind-echo-example-test"  # a name no real package takes
MODULE = "localmind_echo_example_test"
PYPROJECT = textwrap.dedent(
    f"""
    [build-system]
    requires = ["setuptools"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "{DIST}"
    version = "1.0"

    [project.entry-points."localmind.backends"]
    echo = "{MODULE}:EchoBackend"

    [tool.setuptools]
    py-modules = ["{MODULE}"]
    """
)
CONFIG = "default_model: parrots:parrot\nbackends:\n  parrots:\n    type: echo\n"


def _pip(*args: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet"],
        timeout=120,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout}{done.stderr}"


def _installed() -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    importlib.invalidate_caches()
    try:
        distribution(DIST)
    except PackageNotFoundError:
        return False
    return True


def _forget_plugin() -> None:
    from localmind_jupyter.backends import refresh_backend_types

    importlib.invalidate_caches()
    sys.modules.pop(MODULE, None)
    refresh_backend_types()


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The example as a distribution of its own, pip-installed into this virtualenv.

    Offline: no index, no build isolation (setuptools is in the venv). A lock keeps two
    test runs sharing the venv from installing and uninstalling under each other.
    """
    import fcntl

    lock = open(Path(tempfile.gettempdir()) / f"{DIST}.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    dist = tmp_path_factory.mktemp("echo-dist")
    (dist / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (dist / f"{MODULE}.py").write_text(documented_example(), encoding="utf-8")
    try:
        if _installed():  # left by a run that was killed before its clean-up
            _pip("uninstall", "--yes", DIST)
        _pip("install", "--no-deps", "--no-index", "--no-build-isolation", str(dist))
        _forget_plugin()
        yield
    finally:
        try:
            if _installed():
                _pip("uninstall", "--yes", DIST)
        finally:
            _forget_plugin()
            lock.close()


def test_the_plugin_is_installed_into_the_venv_and_found_by_its_entry_point(installed_plugin):
    from importlib.metadata import distribution

    from localmind_jupyter.backends import backend_class, backend_types

    found = distribution(DIST)
    assert Path(str(found.locate_file(""))).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert "echo" in backend_types()
    cls = backend_class("echo")
    assert cls.__module__ == MODULE and cls.type_name == "echo"
    source = Path(sys.modules[MODULE].__file__ or "").read_text(encoding="utf-8")
    assert source == documented_example(), "the installed plugin is not the doc's example"


# --- the magic in a real kernel ---------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_kernel(installed_plugin: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One kernel for the module: its own ``importlib.metadata`` finds the plugin."""
    from tests.test_magic_kernel import Kernel

    home = tmp_path_factory.mktemp("echo-home")
    (home / "config.yaml").write_text(CONFIG, encoding="utf-8")
    k = Kernel(home)
    try:
        k.run("%load_ext localmind_jupyter")
        yield k
    finally:
        k.stop()


def test_the_installed_example_streams_through_the_magic(echo_kernel):
    from tests.test_magic_kernel import answer_messages, of_type

    words = " ".join(f"w{i}" for i in range(40))  # 0.4 s at the example's pace
    messages = echo_kernel.run(f"%%localmind\n{words}")
    assert not of_type(messages, "error")
    updates = [m for m in answer_messages(messages) if m["msg_type"] == "update_display_data"]
    texts = [m["content"]["data"]["text/plain"] for m in updates]
    assert len(texts) >= 3, "the answer did not appear piece by piece"
    growing = texts[:-1]  # the last update adds the stats; it may show no new text
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(growing))
    assert texts[-1].startswith(growing[-1])
    assert texts[-1] == words + " "
    meta = updates[-1]["content"]["metadata"]["localmind"]
    assert (meta["backend"], meta["model"], meta["stopped"]) == ("parrots", "parrot", False)
    stats = meta["stats"]
    assert (stats["completion_tokens"], stats["prompt_tokens"]) == (40, 40)
    assert stats["finish_reason"] == "stop" and stats["tokens_approximate"] is False
    assert 0 < stats["time_to_first_token"] < stats["duration"]
    footer = of_type(messages, "display_data")[-1]["content"]["data"]["text/plain"]
    assert footer.startswith("parrots:parrot · 40 tokens"), footer
    assert "tokens/s" in footer and "first token" in footer


def test_the_installed_example_stops_on_an_interrupt(echo_kernel):
    from tests.test_magic_kernel import answer_messages, of_type

    def interrupt_after_some_words(msg: dict) -> None:
        text = msg["content"].get("data", {}).get("text/plain", "")
        if msg["msg_type"] == "update_display_data" and not asked and text.count(" ") >= 5:
            asked.append(True)
            echo_kernel.manager.interrupt_kernel()

    asked: list[bool] = []
    words = " ".join(f"w{i}" for i in range(500))  # 5 s at the example's pace
    messages = echo_kernel.run(
        f"%%localmind -o partial\n{words}", on_message=interrupt_after_some_words
    )
    assert asked and not of_type(messages, "error"), "the interrupt became a traceback"
    final = [m for m in answer_messages(messages) if m["msg_type"] == "update_display_data"][-1]
    meta = final["content"]["metadata"]["localmind"]
    assert meta["stopped"] is True and meta["stats"]["finish_reason"] == "cancelled"
    partial = final["content"]["data"]["text/plain"]
    assert partial.startswith("w0 w1 w2 w3 w4 ") and len(partial) < len(words) / 2
    notes = [m["content"]["data"]["text/plain"] for m in of_type(messages, "display_data")]
    assert any("stopped" in n for n in notes), notes
    check = echo_kernel.run("print(repr(partial[:15]))")  # kept in the variable too
    assert "w0 w1 w2 w3 w4" in "".join(m["content"]["text"] for m in of_type(check, "stream"))


def test_the_installed_example_fails_clearly_in_the_magic(echo_kernel):
    from tests.test_magic_kernel import of_type

    messages = echo_kernel.run("%%localmind parrots:crow\nhi")
    assert not of_type(messages, "error")
    texts = [
        m["content"]["data"]["text/plain"]
        for m in of_type(messages, "display_data", "update_display_data")
    ]
    assert any("no model 'crow' in Echo; try 'parrot'" in t for t in texts), texts

    messages = echo_kernel.run("%localmind pull parrots:parrot")
    assert not of_type(messages, "error")
    shown = "".join(
        m["content"].get("text", "") + m["content"].get("data", {}).get("text/plain", "")
        for m in of_type(messages, "stream", "display_data")
    )
    assert "nothing to download" in shown, shown


# --- the widgets, in-process (no browser: each widget talks to a DummyComm) -------------------


@pytest.fixture
def echo_session(installed_plugin: None, isolated_home: Path) -> Iterator[None]:
    from ipywidgets.widgets import widget as widget_module

    from localmind_jupyter.session import reset_session

    (isolated_home / "config.yaml").write_text(CONFIG, encoding="utf-8")
    reset_session()
    try:
        yield
    finally:
        reset_session()
        for instance in list(widget_module._instances.values()):
            instance.close()


def test_the_installed_example_in_the_model_manager(echo_session):
    from localmind_jupyter.session import get_session
    from localmind_jupyter.widgets import ModelManager

    panel = ModelManager()
    assert panel.wait(15)
    picker, catalog = panel.picker, panel.catalog
    assert list(picker.rows) == ["parrots"]
    assert picker.status_of("parrots") == ("available", None)
    row = picker.rows["parrots"].html.value
    assert "Echo" in row and "runs in this kernel" in row

    picker.rows["parrots"].button.click()
    assert catalog.backend == "parrots"
    assert catalog.visible() == [("parrots", "parrot")]
    model = catalog.model("parrots", "parrot")
    assert model["installed"] is True and model["in_catalog"] is False
    assert "installed" in catalog._rows[("parrots", "parrot")].html.value

    catalog.select("parrots", "parrot")
    assert catalog.download_button.disabled, "a plugin without download_model offers Download"
    assert "nothing to download" in (catalog.download_reason or "")
    assert catalog.download() is None
    assert not catalog.use_button.disabled
    catalog.use_button.click()
    assert get_session().chosen_model == "parrots:parrot"
    assert "now uses parrots:parrot" in catalog.message.value


# --- the REST API in a Jupyter server -----------------------------------------------------------


@pytest.fixture
def jp_server_config(installed_plugin: None, isolated_home: Path) -> Any:
    """A Jupyter server in this process, where the plugin is installed, configured to use it."""
    from traitlets.config import Config

    (isolated_home / "config.yaml").write_text(CONFIG, encoding="utf-8")
    return Config({"ServerApp": {"jpserver_extensions": {"localmind_jupyter": True}}})


async def _api(jp_fetch: Any, method: str, *path: str, body: Any = None, **kw: Any) -> Any:
    return await jp_fetch(
        "localmind",
        "api",
        *path,
        method=method,
        body=None if body is None else json.dumps(body),
        raise_error=False,
        **kw,
    )


async def test_the_installed_example_through_the_rest_api(jp_fetch):
    response = await _api(jp_fetch, "GET", "backends")
    assert response.code == 200
    entry = json.loads(response.body)["backends"]["parrots"]
    assert (entry["type"], entry["available"], entry["reason"]) == ("echo", True, None)
    info = entry["info"]
    assert (info["name"], info["display_name"], info["downloads_models"]) == (
        "parrots",
        "Echo",
        False,
    )
    assert info["capabilities"] == {
        "downloads": False,
        "streaming": True,
        "json_schema": False,
        "thinking": False,
        "images": False,
        "seed": True,
    }

    chunks: list[bytes] = []
    words = [f"w{i} " for i in range(12)]  # 0.12 s at the example's pace
    body = {"prompt": "".join(words), "model": "parrots:parrot"}
    response = await _api(jp_fetch, "POST", "generate", body=body, streaming_callback=chunks.append)
    assert response.code == 200
    assert len(chunks) >= 2, "the answer came in one piece, not streamed"
    lines = [json.loads(line) for line in b"".join(chunks).splitlines() if line.strip()]
    assert lines[0] == {"type": "start", "backend": "parrots", "model": "parrot"}
    assert [line["text"] for line in lines if line["type"] == "text"] == words
    assert lines[-1]["type"] == "done"
    stats = lines[-1]["response"]
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (12, 12)
    assert stats["finish_reason"] == "stop" and stats["text"] == "".join(words)
    assert stats["tokens_per_second"] > 0 and stats["time_to_first_token"] > 0

    body = {"prompt": "hi", "model": "parrots:crow"}
    response = await _api(jp_fetch, "POST", "generate", body=body)
    error = json.loads(response.body)
    assert response.code == 404, error
    assert "no model 'crow' in Echo; try 'parrot'" in error["message"]

    body = {"model": "parrot", "backend": "parrots"}
    response = await _api(jp_fetch, "POST", "models", "download", body=body)
    error = json.loads(response.body)
    assert response.code == 400 and "nothing to download" in error["message"], error


async def test_a_client_that_leaves_cancels_the_installed_example(
    http_server_client, jp_base_url, jp_auth_header, jp_serverapp
):
    import asyncio
    import threading
    import time

    import httpx

    state = jp_serverapp.web_app.settings["localmind_state"]
    target = http_server_client.get_url(f"{jp_base_url}localmind/api/generate")
    words = " ".join(f"w{i}" for i in range(500))  # 5 s at the example's pace
    body = {"prompt": words, "model": "parrots:parrot"}
    seen, before = 0, set(threading.enumerate())
    async with (
        httpx.AsyncClient(headers=jp_auth_header, timeout=10) as client,
        client.stream("POST", target, json=body) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line and json.loads(line)["type"] == "text":
                seen += 1
                if seen == 3:
                    break  # leaving the block closes the connection mid-answer
    left = time.monotonic()
    while state._pumps or any(
        t.name == "localmind-generate" for t in set(threading.enumerate()) - before
    ):
        assert time.monotonic() - left < 2, "the plugin kept generating after the client left"
        await asyncio.sleep(0.02)
