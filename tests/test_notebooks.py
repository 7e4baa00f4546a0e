"""The notebooks in ``notebooks/`` are documentation and end-to-end tests at once.

``test_notebooks_pass_nbval`` runs them with nbval in strict mode: every code cell runs
in a fresh kernel and its output must equal the output stored in the notebook, after
``notebooks/nbval-sanitize.cfg`` has replaced what truly varies (timings, speeds,
ports). The bundled model answers greedily, so its answers are compared word for word.

The other tests read the stored notebooks: they must show real, clean outputs to a
reader on GitHub (every cell run in order, no tracebacks, no paths of the machine that
ran them).

This module is also the small pytest plugin the nbval run loads (``-p
tests.test_notebooks``). It makes nbval's kernel behave as in Jupyter in two ways
nbval 0.11 does not:

- ``update_display_data`` messages are applied to the display they belong to.
  ``%%localmind`` streams its answer into one display that it updates; nbval alone
  would compare the first "⏳ waiting" placeholder instead of the answer.
- Cells run with ``store_history=True``, so ``In``, ``Out`` and the execution counts
  exist: the quickstart fills a prompt from ``{Out[6]}``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import deque
from pathlib import Path
from queue import Empty
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SANITIZE = NOTEBOOK_DIR / "nbval-sanitize.cfg"

#: Paths that tie a stored output to the machine that produced it.
MACHINE_PATHS = re.compile(r"/(?:tmp|root|home|Users|work)/|/private/var/|site-packages|\\Users\\")
IGNORE_MARKER = "NBVAL_IGNORE_OUTPUT"


# --- the nbval plugin (loaded with ``-p tests.test_notebooks`` in the nbval subprocess) ------


def apply_display_updates(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold each ``update_display_data`` into the ``display_data`` with the same display id.

    The updated messages keep their place; the updates themselves are dropped. An update
    for a display of an earlier cell is dropped too (nbval compares one cell at a time).
    """
    shown: dict[str, list[dict[str, Any]]] = {}
    kept = []
    for message in messages:
        content = message.get("content", {})
        display_id = (content.get("transient") or {}).get("display_id")
        if message.get("msg_type") == "display_data" and display_id:
            shown.setdefault(display_id, []).append(content)
        elif message.get("msg_type") == "update_display_data":
            for target in shown.get(display_id, []):
                target["data"] = content.get("data", {})
                target["metadata"] = content.get("metadata", {})
            continue
        kept.append(message)
    return kept


def pytest_configure(config: pytest.Config) -> None:
    """Patch nbval's kernel: history on, display updates applied (see the module's doc)."""
    from nbval.kernel import RunningKernel

    if getattr(RunningKernel, "_localmind_patched", False):
        return
    original = RunningKernel.get_message

    def execute_cell_input(self: Any, cell_input: str, allow_stdin: bool | None = None) -> str:
        return self.kc.execute(
            cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False
        )

    def get_message(self: Any, stream: str, timeout: float | None = None) -> dict[str, Any]:
        if stream != "iopub":
            return original(self, stream, timeout=timeout)
        pending: deque[dict[str, Any]] = self.__dict__.setdefault("_localmind_pending", deque())
        if not pending:
            batch: list[dict[str, Any]] = []
            try:
                while True:
                    message = original(self, stream, timeout=timeout)
                    batch.append(message)
                    content = message.get("content", {})
                    if message["msg_type"] == "status" and content.get("execution_state") == "idle":
                        break
            except Empty:
                if not batch:
                    raise
            pending.extend(apply_display_updates(batch))
        return pending.popleft()

    RunningKernel.execute_cell_input = execute_cell_input
    RunningKernel.get_message = get_message
    RunningKernel._localmind_patched = True


# --- helpers ----------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def source(cell: dict[str, Any]) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def output_texts(output: dict[str, Any]) -> list[str]:
    """Every text a reader (or nbval) sees in one stored output."""
    if output["output_type"] == "stream":
        text = output["text"]
        return [text if isinstance(text, str) else "".join(text)]
    if output["output_type"] == "error":
        return [output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])]
    texts = []
    for value in output.get("data", {}).values():
        if isinstance(value, list):
            value = "".join(value)
        texts.append(value if isinstance(value, str) else json.dumps(value))
    return texts


# --- tests ------------------------------------------------------------------------------------


def test_the_notebooks_are_there():
    names = [path.name for path in NOTEBOOKS]
    assert names == [
        "01-quickstart.ipynb",
        "02-backends.ipynb",
        "03-model-manager.ipynb",
        "04-prompting-lab.ipynb",
        "05-python-api.ipynb",
        "06-structured-output.ipynb",
        "07-which-model.ipynb",
        "08-ask-about-a-plot.ipynb",
    ]
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert name in readme, f"notebooks/README.md does not describe {name}"


def test_display_updates_are_folded_into_their_display():
    """What the plugin gives nbval for a streamed answer: the final text, in one output."""

    def message(kind: str, content: dict[str, Any]) -> dict[str, Any]:
        return {"msg_type": kind, "content": content, "parent_header": {"msg_id": "cell"}}

    def shown(text: str) -> dict[str, Any]:
        return {"data": {"text/plain": text}, "metadata": {}, "transient": {"display_id": "a"}}

    messages = [
        message("display_data", shown("⏳ transformers:smollm2-135m-instruct …")),
        message("update_display_data", shown("The capital")),
        message("stream", {"name": "stdout", "text": "hello\n"}),
        message("update_display_data", shown("The capital of France is Paris.")),
        message("update_display_data", {**shown("elsewhere"), "transient": {"display_id": "b"}}),
        message("status", {"execution_state": "idle"}),
    ]
    kept = apply_display_updates(messages)
    assert [m["msg_type"] for m in kept] == ["display_data", "stream", "status"]
    assert kept[0]["content"]["data"] == {"text/plain": "The capital of France is Paris."}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_real_and_clean(path: Path):
    notebook = load(path)
    cells = code_cells(notebook)
    counts = [cell["execution_count"] for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: run it top to bottom in a fresh kernel before committing "
        f"(.venv/bin/jupyter execute --inplace {path.relative_to(REPO)}); counts: {counts}"
    )
    for number, cell in enumerate(cells, 1):
        text = source(cell)
        where = f"{path.name}, code cell {number}"
        if text.lstrip().startswith("%%localmind") or text.lstrip().startswith("%localmind"):
            assert cell["outputs"], f"{where}: a LocalMind cell must show its stored output"
        if IGNORE_MARKER in text:
            # nbval sees the marker only alone on its comment line: the reason goes below it.
            lines = [line.strip() for line in text.splitlines()]
            at = next(i for i, line in enumerate(lines) if IGNORE_MARKER in line)
            assert lines[at] == f"# {IGNORE_MARKER}", f"{where}: nbval misses '{lines[at]}'"
            reason = lines[at + 1] if at + 1 < len(lines) else ""
            assert reason.startswith("#") and reason.lstrip("# "), (
                f"{where}: say why the output varies, in a comment under {IGNORE_MARKER}"
            )
            assert cell["outputs"], f"{where}: {IGNORE_MARKER} on a cell without output"
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"{where}: stored an error"
            assert output.get("name") != "stderr", f"{where}: stored stderr: {output['text']}"
            for value in output_texts(output):
                assert "Traceback" not in value, f"{where}: stored a traceback"
                assert "⏳" not in value, f"{where}: saved while an answer was still coming"
                found = MACHINE_PATHS.search(value)
                assert found is None, f"{where}: stored a machine path ({found and found[0]})"
    widget_state = json.dumps(notebook["metadata"].get("widgets", {}))
    found = MACHINE_PATHS.search(widget_state)
    assert found is None, f"{path.name}: the stored widget state has a machine path"


@pytest.mark.timeout(900)
def test_notebooks_pass_nbval(tmp_path: Path):
    """Run every notebook in a fresh kernel; each cell's output must match the stored one."""
    env = dict(os.environ)
    for name in ("LOCALMIND_CONFIG", "OLLAMA_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    for name, folder in {
        "LOCALMIND_HOME": "localmind-home",
        "IPYTHONDIR": "ipython",
        "JUPYTER_CONFIG_DIR": "jupyter-config",
        "JUPYTER_DATA_DIR": "jupyter-data",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
        # nbval kills its kernels, so the notebooks' temporary folders are made here.
        "TMPDIR": "tmp",
        # An empty Hugging Face cache: the Transformers backend lists cached Hub models.
        "HF_HOME": "hf-home",
        "HF_HUB_CACHE": "hf-home/hub",
    }.items():
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        env[name] = str(tmp_path / folder)
    # Keep the converted bundled model of this checkout (tests/conftest.py sets it).
    env.setdefault("LOCALMIND_CACHE", str(REPO / ".cache" / "localmind"))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        str(SANITIZE.relative_to(REPO)),
        "--nbval-cell-timeout",
        "300",
        "-p",
        "tests.test_notebooks",
        "-p",
        "no:cacheprovider",
        "-q",
        *[str(path.relative_to(REPO)) for path in NOTEBOOKS],
    ]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=850)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    expected = sum(len(code_cells(load(path))) for path in NOTEBOOKS)
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed is not None and int(passed.group(1)) == expected, report
    assert not re.search(r"\d+ (failed|skipped|error)", run.stdout), report
