"""The nbval support the package ships (``localmind_jupyter.nbval_plugin``).

A teacher's notebook must pass plain ``pytest --nbval`` with just nbval and LocalMind
installed. The end-to-end tests run pytest in a subprocess in a temporary folder, with
this checkout installed there (``tests/installed.py``) and nothing of the repository's
tests on its ``PYTHONPATH``: the plugin loads through its ``pytest11`` entry point.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from localmind_jupyter import nbval_plugin
from localmind_jupyter.nbval_plugin import SANITIZE_PATTERNS, apply_display_updates
from tests import installed

#: A ``-v`` result line; pytest 9 names the notebook ``lesson::ipynb``, older ones ``lesson.ipynb``.
RESULT = re.compile(
    r"^(\S+?)(?:\.|::)ipynb::Cell (\d+) (PASSED|FAILED|ERROR|SKIPPED)", re.MULTILINE
)


# --- folding display updates ------------------------------------------------------------------


def message(kind: str, content: dict[str, Any], parent: str = "cell") -> dict[str, Any]:
    return {"msg_type": kind, "content": content, "parent_header": {"msg_id": parent}}


def shown(text: str, display_id: str | None = "a") -> dict[str, Any]:
    transient = {"display_id": display_id} if display_id is not None else {}
    return {"data": {"text/plain": text}, "metadata": {}, "transient": transient}


def test_display_updates_are_folded_into_their_display():
    """What nbval compares for a streamed answer: the final text, in one output, in place."""
    messages = [
        message("display_data", shown("⏳ transformers:smollm2-135m-instruct …")),
        message("update_display_data", shown("The capital")),
        message("stream", {"name": "stdout", "text": "hello\n"}),
        message("update_display_data", shown("The capital of France is Paris.")),
        message("status", {"execution_state": "idle"}),
    ]
    kept = apply_display_updates(messages)
    assert [m["msg_type"] for m in kept] == ["display_data", "stream", "status"]
    assert kept[0]["content"]["data"] == {"text/plain": "The capital of France is Paris."}


def test_updates_for_displays_the_cell_did_not_show_are_dropped():
    """An earlier cell's display, an unknown id, no id at all: nothing shows in this cell."""
    messages = [
        message("update_display_data", shown("from an earlier cell", "earlier"), parent="old"),
        message("display_data", shown("mine")),
        message("update_display_data", shown("unknown id", "b")),
        message("update_display_data", shown("no id", None)),
        message("update_display_data", {"data": {"text/plain": "bad"}, "transient": "a"}),
        message("update_display_data", {}),
        {"msg_type": "update_display_data"},
        message("status", {"execution_state": "idle"}),
    ]
    kept = apply_display_updates(messages)
    assert [m["msg_type"] for m in kept] == ["display_data", "status"]
    assert kept[0]["content"]["data"] == {"text/plain": "mine"}


def test_an_update_reaches_every_display_with_its_id_and_no_other():
    messages = [
        message("display_data", shown("one")),
        message("display_data", shown("other", "b")),
        message("display_data", shown("two")),
        message("update_display_data", {**shown("new"), "metadata": {"localmind": {"x": 1}}}),
    ]
    kept = apply_display_updates(messages)
    assert [m["content"]["data"]["text/plain"] for m in kept] == ["new", "other", "new"]
    assert kept[2]["content"]["metadata"] == {"localmind": {"x": 1}}


def test_a_display_shown_before_the_batch_keeps_its_later_update_out():
    """Updates of a display from an earlier cell (a thread still running) do not leak in."""
    first = apply_display_updates([message("display_data", shown("earlier cell"))])
    later = apply_display_updates([message("update_display_data", shown("late update"))])
    assert first[0]["content"]["data"] == {"text/plain": "earlier cell"}
    assert later == []


# --- the footer's timings ---------------------------------------------------------------------


def sanitize(text: str) -> str:
    """What nbval does with the plugin's patterns (``IPyNbCell.sanitize``)."""
    for _, regex, replacement in SANITIZE_PATTERNS:
        text = re.sub(regex, replacement, text)
    return text


def footer(**stats: Any) -> str:
    from localmind_jupyter.backends.base import ModelResponse
    from localmind_jupyter.magics.magic import _stats_line

    fields = {
        "completion_tokens": 8,
        "time_to_first_token": 0.27,
        "tokens_per_second": 24.76,
        "duration": 0.55,
    }
    response = ModelResponse(
        text="Paris.", model="smollm2-135m-instruct", backend="transformers", **{**fields, **stats}
    )
    return _stats_line(response, stopped=False)


def test_the_footer_timings_are_replaced_and_token_counts_kept():
    stored = footer()
    assert "first token 0.27 s" in stored and "24.8 tokens/s" in stored
    assert sanitize(stored) == sanitize(
        footer(time_to_first_token=1.03, tokens_per_second=7.1, duration=12.4)
    )
    assert sanitize(stored) == (
        "transformers:smollm2-135m-instruct · 8 tokens · first token T s · R tokens/s · D s"
    )
    assert sanitize(stored) != sanitize(footer(completion_tokens=9))


def test_the_compare_table_and_progress_timings_are_replaced():
    cell = "<td style='text-align:left'>0.27 s</td><td style='text-align:left'>24.8</td>"
    assert sanitize(cell) == "<td style='text-align:left'>N</td>" * 2
    row = "gguf:smollm2  8   0.05 s  77.0  0.2 s  stop"
    assert sanitize(row) == "gguf:smollm2  8   T s  R  D s  stop"
    assert sanitize("1.3 MB / 1.3 MB · 100 % · 12.5 MB/s · ETA 3 s") == (
        "1.3 MB / 1.3 MB · 100 % · SPEED/s · ETA N s"
    )
    assert sanitize("12/12 rows · 3.1 rows/s · done in 3.9 s") == "12/12 rows · RATE · done in D s"
    assert sanitize("Ollama is not running at http://127.0.0.1:51601 ([Errno 111] …)") == (
        "Ollama is not running at http://127.0.0.1:PORT ([Errno N] …)"
    )


def test_image_thumbnails_hashes_and_repr_addresses_are_replaced_and_answers_kept():
    thumb = "<img src='data:image/png;base64,iVBORw0KGgo+/=' alt='fig' width='160'>"
    assert sanitize(thumb) == "<img src='data:image/png;base64,THUMBNAIL' alt='fig' width='160'>"
    line = "[image 1: fig, 640×480 PNG, sha256 1a2b3c4d]"
    assert sanitize(line) == "[image 1: fig, 640×480 PNG, sha256 HASH]"
    out = "[<matplotlib.lines.Line2D at 0x7f3a1c2b9d50>]"
    assert sanitize(out) == "[<matplotlib.lines.Line2D at 0xADDRESS>]"
    answer = "I see a 640×480 image; its most common colour is blue (#1f77b4)."
    assert sanitize(answer) == answer


def test_the_users_own_sanitize_patterns_come_first_and_win():
    patterns = {r"first token \d+\.\d+ s": "MINE", r"\bParis\b": "CITY"}
    nbval_plugin.add_sanitize_patterns(patterns)
    assert list(patterns)[:2] == [r"first token \d+\.\d+ s", r"\bParis\b"]
    assert patterns[r"first token \d+\.\d+ s"] == "MINE"
    assert len(patterns) == len(SANITIZE_PATTERNS) + 1


# --- registration and cost --------------------------------------------------------------------


def test_pyproject_registers_the_plugin_under_the_name_localmind():
    assert installed.entry_points()["pytest11"] == {"localmind": "localmind_jupyter.nbval_plugin"}
    # After nbval's own setup of the cell (its kernel started), so trylast.
    assert nbval_plugin.pytest_runtest_setup.pytest_impl["trylast"] is True


HEAVY = ("IPython", "nbval", "nbformat", "jupyter_client", "ipykernel", "zmq", "torch", "httpx")


def test_importing_the_plugin_imports_nothing_heavy():
    """pytest loads the plugin in every run where LocalMind is installed: it must cost nothing."""
    code = (
        "import sys, pytest\n"
        "before = set(sys.modules)\n"
        "import localmind_jupyter.nbval_plugin\n"
        "print(sorted(m.split('.')[0] for m in set(sys.modules) - before))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    new = set(eval(run.stdout))
    assert "localmind_jupyter" in new
    assert not new & set(HEAVY), new


def plain_env(tmp_path: Path, site: Path) -> dict[str, str]:
    """A user's environment: this package and nbval installed, no repository on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = str(site)
    for name, folder in {
        "IPYTHONDIR": "ipython",
        "JUPYTER_CONFIG_DIR": "jupyter-config",
        "JUPYTER_DATA_DIR": "jupyter-data",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
    }.items():
        (tmp_path / folder).mkdir(exist_ok=True)
        env[name] = str(tmp_path / folder)
    return env


def pytest_in(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-v", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def results(run: subprocess.CompletedProcess[str]) -> dict[tuple[str, int], str]:
    found = RESULT.findall(run.stdout)
    return {(f"{name}.ipynb", int(cell)): state for name, cell, state in found}


def test_pytest_without_nbval_is_unchanged(tmp_path: Path):
    """Installed but idle: loaded as ``localmind``, it imports and patches nothing."""
    site = installed.install(tmp_path / "site")
    work = tmp_path / "work"
    work.mkdir()
    (work / "test_plain.py").write_text(
        "import sys\n"
        "def test_idle(pytestconfig):\n"
        "    assert pytestconfig.pluginmanager.has_plugin('localmind')\n"
        f"    assert not set({HEAVY!r}) & set(sys.modules), sorted(sys.modules)\n",
        encoding="utf-8",
    )
    run = pytest_in(work, plain_env(tmp_path, site), "-p", "no:nbval", "-p", "no:cacheprovider")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


# --- end to end: plain `pytest --nbval` -------------------------------------------------------


def execute(notebook: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    """Run it once as Jupyter does (nbclient), so its stored outputs are a real run's."""
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()
    return notebook


def new_notebook(*sources: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    notebook.cells = [nbformat.v4.new_code_cell(text) for text in sources]
    return notebook


def test_display_updates_history_and_timings_without_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The three fixes on a tiny notebook; ``-p no:localmind`` shows nbval alone fails it."""
    site = installed.install(tmp_path / "site")
    env = plain_env(tmp_path, site)
    for name in ("PYTHONPATH", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(name, env[name])
    work = tmp_path / "work"
    work.mkdir()
    line = "transformers:smollm2-135m-instruct · 8 tokens · first token {} s · {} tokens/s · {} s"
    notebook = execute(
        new_notebook(
            "h = display('⏳ waiting', display_id=True)\nh.update('The answer')",
            "40 + 2",
            "Out[2] + 1",
            f"print({line.format('0.27', '24.8', '0.6')!r})",
        ),
        work,
    )
    assert notebook.cells[2].outputs[0]["data"]["text/plain"] == "43"
    # The stored footer as another run had it: other timings, the same token count.
    stream = notebook.cells[3].outputs[0]
    stream["text"] = line.format("1.03", "7.1", "2.2") + "\n"
    nbformat.write(notebook, work / "toy.ipynb")
    stream["text"] = stream["text"].replace("8 tokens", "9 tokens")
    nbformat.write(notebook, work / "counts.ipynb")

    run = pytest_in(work, env, "--nbval", "toy.ipynb", "counts.ipynb")
    assert results(run) == {
        **{("toy.ipynb", cell): "PASSED" for cell in range(4)},
        **{("counts.ipynb", cell): "PASSED" for cell in range(3)},
        ("counts.ipynb", 3): "FAILED",
    }, run.stdout[-4000:]

    off = pytest_in(work, env, "--nbval", "-p", "no:localmind", "toy.ipynb")
    assert results(off) == {
        ("toy.ipynb", 0): "FAILED",  # nbval alone compares the '⏳ waiting' placeholder
        ("toy.ipynb", 1): "PASSED",
        ("toy.ipynb", 2): "FAILED",  # no history: Out[2] does not exist
        ("toy.ipynb", 3): "FAILED",  # the timings differ
    }, off.stdout[-4000:]


QUESTION = "What is the capital of France? Answer in one sentence."


@pytest.mark.timeout(900)
def test_a_notebook_written_from_scratch_passes_plain_nbval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A teacher's notebook: the bundled model, default backend, greedy, footer on."""
    site = installed.install(tmp_path / "site")
    env = plain_env(tmp_path, site)
    for name in ("PYTHONPATH", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"):
        monkeypatch.setenv(name, env[name])
    work = tmp_path / "lesson"
    work.mkdir()
    notebook = execute(
        new_notebook("%load_ext localmind_jupyter", f"%%localmind\n{QUESTION}"), work
    )
    answer, stats = notebook.cells[1].outputs
    text = answer["data"]["text/plain"]
    assert "Paris" in text and "⏳" not in text
    assert re.search(r"\d+ tokens · first token \d+\.\d+ s", stats["data"]["text/plain"])
    nbformat.write(notebook, work / "lesson.ipynb")
    # The control: an answer edited by hand must fail, so the check can fail.
    answer["data"]["text/plain"] = text.replace("Paris", "Lyon")
    answer["data"]["text/html"] = answer["data"]["text/html"].replace("Paris", "Lyon")
    nbformat.write(notebook, work / "edited.ipynb")

    run = pytest_in(work, env, "--nbval", "lesson.ipynb", "edited.ipynb")
    assert results(run) == {
        ("lesson.ipynb", 0): "PASSED",
        ("lesson.ipynb", 1): "PASSED",
        ("edited.ipynb", 0): "PASSED",
        ("edited.ipynb", 1): "FAILED",
    }, run.stdout[-6000:]
    assert "Lyon" in run.stdout  # the failure shows the edited answer against the real one
