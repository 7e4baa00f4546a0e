"""The prompt ``%localmind explain`` sends, built from real tracebacks.

The code runs as IPython runs a cell: compiled under a cell's file name with its lines in
``linecache``, executed from a helper frame that stands for IPython's ``run_code`` (which
the prompt must not show). Libraries (json, pandas) raise their own errors from their
own frames, which the prompt collapses.
"""

from __future__ import annotations

import gc
import hashlib
import linecache
import re
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from localmind_jupyter.core.explain import (
    INSTRUCTION,
    PROMPT_CHARS,
    FailedCell,
    build_prompt,
    capture,
    capture_cell,
    mask_code_secrets,
)
from localmind_jupyter.session import MAX_FAILED_CELLS, KernelSession


class Notebook:
    """Cells run the way IPython runs them: numbered files whose lines linecache knows."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.names: dict[str, int] = {}
        self.count = 0

    def run(self, code: str) -> FailedCell | None:
        self.count += 1
        digest = hashlib.sha1(code.encode()).hexdigest()[:12]
        filename = f"<ipython-input-{self.count}-{digest}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.names[filename] = self.count
        try:
            exec(compile(code, filename, "exec"), self.ns)  # a cell, as IPython runs it
        except BaseException as exc:  # noqa: BLE001 - a cell may raise anything
            return capture_cell(self.count, code, exc, self.names)
        return None

    def fail(self, code: str) -> FailedCell:
        cell = self.run(code)
        assert cell is not None, "the cell did not fail"
        return cell

    def close(self) -> None:
        for filename in self.names:
            linecache.cache.pop(filename, None)


@pytest.fixture
def nb() -> Iterator[Notebook]:
    notebook = Notebook()
    yield notebook
    notebook.close()


def traceback_of(prompt: str) -> str:
    """The fenced traceback block of a prompt."""
    match = re.search(r"```text\n(.*?)\n```\Z", prompt, re.S)
    assert match, prompt
    return match.group(1)


def test_a_function_called_from_cell_code(nb):
    assert nb.run("def ratio(a, b):\n    return a / b\n") is None
    cell = nb.fail("prices = [3, 0]\ntotal = ratio(10, prices[1])\n")
    prompt = build_prompt(cell)
    assert prompt.startswith(INSTRUCTION)
    assert "The code of cell 2:\n```python\nprices = [3, 0]\ntotal = ratio(10, prices[1])\n```" in (
        prompt
    )
    assert traceback_of(prompt) == (
        "Traceback (most recent call last):\n"
        "  Cell In[2], line 2, in <module>\n"
        "    total = ratio(10, prices[1])\n"
        "  Cell In[1], line 2, in ratio\n"
        "    return a / b\n"
        "ZeroDivisionError: division by zero"
    )
    assert "test_explain.py" not in prompt, "the frame that ran the cell is not the learner's"
    assert cell.label == "explain: cell 2 ZeroDivisionError"


def test_a_json_error_deep_in_the_standard_library_is_one_line(nb):
    cell = nb.fail("import json\n\ndef load(text):\n    return json.loads(text)\n\nload('{bad')\n")
    lines = traceback_of(build_prompt(cell)).splitlines()
    assert lines[1:5] == [
        "  Cell In[1], line 6, in <module>",
        "    load('{bad')",
        "  Cell In[1], line 4, in load",
        "    return json.loads(text)",
    ]
    assert re.fullmatch(
        r"  \.\.\. 3 frames in json \(raised in json/decoder\.py, line \d+, in raw_decode\) \.\.\.",
        lines[5],
    )
    assert lines[6].startswith("json.decoder.JSONDecodeError: Expecting property name")
    assert len(lines) == 7


def test_a_pandas_error_collapses_its_library_frames_and_its_chain(nb):
    pytest.importorskip("pandas")
    cell = nb.fail("import pandas as pd\ndf = pd.DataFrame({'price': [1, 2]})\ndf['prices']\n")
    prompt = build_prompt(cell)
    text = traceback_of(prompt)
    assert "site-packages" not in prompt and "/lib/python" not in prompt
    assert "  Cell In[1], line 3, in <module>\n    df['prices']\n" in text
    # pandas raises KeyError from the KeyError of its hash table (compiled .pyx frames).
    assert "The above exception was the direct cause of the following exception:" in text
    collapsed = re.findall(r"^  \.\.\. (\d+) frames? in (\S+?) .*$", text, re.M)
    assert collapsed and all(package == "pandas" for _n, package in collapsed)
    assert text.endswith("KeyError: 'prices'")
    assert len(prompt) < 1500


def test_a_library_calling_back_the_learners_function_keeps_both_ends(nb):
    pytest.importorskip("pandas")
    cell = nb.fail(
        "import pandas as pd\n"
        "df = pd.DataFrame({'price': [1, 0]})\n"
        "df['price'].apply(lambda p: 10 / p)\n"
    )
    lines = traceback_of(build_prompt(cell)).splitlines()
    assert lines[1:3] == [
        "  Cell In[1], line 3, in <module>",
        "    df['price'].apply(lambda p: 10 / p)",
    ]
    assert re.fullmatch(r"  \.\.\. \d+ frames in pandas \.\.\.", lines[3]), "no 'raised in'"
    assert lines[4:] == [
        "  Cell In[1], line 3, in <lambda>",
        "    df['price'].apply(lambda p: 10 / p)",
        "ZeroDivisionError: division by zero",
    ]


def test_the_learners_own_files_are_shown_with_home_as_tilde(nb, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    module = tmp_path / "lesson" / "lesson_helpers.py"
    module.parent.mkdir()
    module.write_text("def mean(values):\n    return sum(values) / len(values)\n")
    monkeypatch.syspath_prepend(str(module.parent))
    try:
        cell = nb.fail("from lesson_helpers import mean\nmean([])\n")
    finally:
        sys.modules.pop("lesson_helpers", None)
    text = traceback_of(build_prompt(cell))
    assert text.splitlines()[3:5] == [
        '  File "~/lesson/lesson_helpers.py", line 2, in mean',
        "    return sum(values) / len(values)",
    ]
    assert str(tmp_path) not in build_prompt(cell)


def test_chained_exceptions_are_shown_oldest_first_and_bounded(nb):
    cell = nb.fail(
        "try:\n"
        "    {}['x']\n"
        "except KeyError:\n"
        "    try:\n"
        "        int('seven')\n"
        "    except ValueError as exc:\n"
        "        raise RuntimeError('could not read the settings') from exc\n"
    )
    text = traceback_of(build_prompt(cell))
    order = [text.index(s) for s in ("KeyError: 'x'", "ValueError: invalid", "RuntimeError:")]
    assert order == sorted(order)
    assert "During handling of the above exception, another exception occurred:" in text
    assert "The above exception was the direct cause of the following exception:" in text

    deep = nb.fail(
        "def level(n):\n"
        "    try:\n"
        "        raise ValueError(f'level {n}') if n == 0 else level(n - 1)\n"
        "    except ValueError as exc:\n"
        "        raise ValueError(f'level {n + 1}') from exc\n"
        "level(6)\n"
    )
    text = traceback_of(build_prompt(deep))
    assert text.startswith("(earlier exceptions of this chain left out)")
    assert text.count("ValueError: level") == 3  # MAX_CHAIN

    suppressed = nb.fail(
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    raise KeyError('k') from None\n"
    )
    assert traceback_of(build_prompt(suppressed)).count("Traceback") == 1


def test_a_huge_message_a_long_line_and_a_long_cell_are_cut(nb):
    filler = "".join(f"step_{i} = {i}\n" for i in range(300))
    long_line = "values = [" + ", ".join(str(i) for i in range(2000)) + "]\n"
    cell = nb.fail(filler + long_line + "raise ValueError('x' * 100_000)\n" + filler)
    prompt = build_prompt(cell)
    assert len(prompt) <= PROMPT_CHARS
    assert "raise ValueError('x' * 100_000)" in prompt, "the failing line is in the window"
    assert re.search(r"ValueError: x{400} … \[99600 more characters\]", prompt)
    assert re.search(r"# \.\.\. \d+ lines above \.\.\.", prompt)
    assert re.search(r"# \.\.\. \d+ lines below \.\.\.", prompt)
    assert max(len(line) for line in prompt.splitlines()) < 700


def test_deep_recursion_is_one_frame_and_a_count(nb):
    cell = nb.fail("def down(n):\n    return down(n + 1)\n\ndown(0)\n")
    text = traceback_of(build_prompt(cell))
    assert re.search(r"  \[the frame above repeated \d{3,} more times\]", text)
    assert text.count("return down(n + 1)") == 1
    assert text.endswith("RecursionError: maximum recursion depth exceeded")


def test_a_cell_that_does_not_compile_shows_where(nb):
    cell = nb.fail("x = [1, 2\ny = 3\n")
    text = traceback_of(build_prompt(cell))
    assert "Traceback" not in text, "only the compiler's own frames ran"
    assert text.startswith("  Cell In[1], line 1\n    x = [1, 2\n")
    assert "SyntaxError: " in text


def test_api_keys_in_lines_messages_and_code_never_reach_the_prompt(nb, monkeypatch):
    from localmind_jupyter import secrets

    monkeypatch.setenv("WEATHER_SERVICE_TOKEN", "wx-token-0123456789")
    secrets.register("registered-key-ABCDEF123456")
    cell = nb.fail(
        "import os\n"
        "api_key = 'sk-live-abcdefghijklmnop1234'\n"
        "headers = {'Authorization': 'Bearer abcdefgh12345678'}\n"
        "def connect(key, token):\n"
        "    raise PermissionError(\n"
        "        f'bad key {key} or token {token} or registered-key-ABCDEF123456'\n"
        "    )\n"
        "connect(api_key, os.environ['WEATHER_SERVICE_TOKEN'] + ' wx-token-0123456789')\n"
    )
    prompt = build_prompt(cell)
    for secret in (
        "sk-live-abcdefghijklmnop1234",
        "abcdefgh12345678",
        "wx-token-0123456789",
        "registered-key-ABCDEF123456",
    ):
        assert secret not in prompt
    assert "api_key = '****'" in prompt
    assert "PermissionError: bad key **** or token **** **** or ****" in prompt


def test_masking_leaves_ordinary_code_alone():
    code = "max_tokens = 'plenty'\nname = 'sk-short'\npassword = os.environ['PW']\n"
    assert mask_code_secrets(code) == code
    assert mask_code_secrets('cfg = {"api_key": "abcd1234"}') == 'cfg = {"api_key": "****"}'


def test_the_capture_keeps_no_frame_alive():
    class Big:
        pass

    def fails(obj: Big) -> None:
        raise ValueError("no")

    big = Big()
    ref = weakref.ref(big)
    try:
        fails(big)
    except ValueError as exc:
        captured = capture(exc)
    del big
    gc.collect()
    assert ref() is None, "the captured error kept a frame (and its locals) alive"
    assert captured.message == "no"


def test_the_session_keeps_the_newest_failed_cells():
    session = KernelSession()
    error = capture(ZeroDivisionError("division by zero"))
    for n in range(1, MAX_FAILED_CELLS + 6):
        session.record_failed_cell(FailedCell(n, "1 / 0", error))
    assert list(session.failed_cells) == list(range(6, MAX_FAILED_CELLS + 6))
