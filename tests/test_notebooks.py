"""The notebooks in ``notebooks/`` are documentation and end-to-end tests at once.

``test_notebooks_pass_nbval`` runs them with plain ``pytest --nbval`` in strict mode, as a
teacher would run their own notebook: every code cell runs in a fresh kernel and its output
must equal the output stored in the notebook. Only nbval and this package are involved:
the package's nbval plugin (``localmind_jupyter/nbval_plugin.py``, loaded through its
``pytest11`` entry point) applies display updates, keeps history and replaces what truly
varies (timings, speeds, ports). The bundled model answers greedily, so its answers and
token counts are compared word for word. It runs twice in a row: a second run in the same
LocalMind home must pass too.

The other tests read the stored notebooks: they must show real, clean outputs to a
reader on GitHub (every cell run in order, no tracebacks, no paths of the machine that
ran them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import installed

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

#: Paths that tie a stored output to the machine that produced it.
MACHINE_PATHS = re.compile(r"/(?:tmp|root|home|Users|work)/|/private/var/|site-packages|\\Users\\")
IGNORE_MARKER = "NBVAL_IGNORE_OUTPUT"


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
        "09-teaching-with-replay.ipynb",
    ]
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    for name in names:
        assert name in readme, f"notebooks/README.md does not describe {name}"


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


@pytest.mark.timeout(1800)
def test_notebooks_pass_nbval(tmp_path: Path):
    """Plain ``pytest --nbval`` twice in a row: each cell's output matches the stored one."""
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
    # This checkout installed (its entry points: the nbval plugin); _servers.py finds tests/.
    env["PYTHONPATH"] = str(installed.install(tmp_path / "site"))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        "--nbval-cell-timeout",
        "300",
        "-p",
        "no:cacheprovider",
        "-q",
        *[str(path.relative_to(REPO)) for path in NOTEBOOKS],
    ]
    expected = sum(len(code_cells(load(path))) for path in NOTEBOOKS)
    for attempt in ("first", "second"):
        run = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=850
        )
        report = f"{attempt} run:\n" + run.stdout[-6000:] + run.stderr[-2000:]
        assert run.returncode == 0, report
        passed = re.search(r"(\d+) passed", run.stdout)
        assert passed is not None and int(passed.group(1)) == expected, report
        assert not re.search(r"\d+ (failed|skipped|error)", run.stdout), report
