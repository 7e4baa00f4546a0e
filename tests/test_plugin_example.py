"""``docs/plugins.md``'s example backend, taken verbatim from the doc, works as it says.

In-process first (streaming, stats, stop strings, cancel, errors); then pip-installed as
a throwaway distribution with its ``localmind.backends`` entry point and driven through
the magic in a real kernel and through the REST API, with no front-end change.
"""

from __future__ import annotations

import re
import textwrap
import types

import pytest

from localmind_jupyter.errors import ModelNotFound, OptionError
from tests.conftest import REPO


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
