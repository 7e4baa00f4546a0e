"""Speed and conversion-time figures come from ``docs/performance.md`` only.

The measured table there is the one source. Anywhere else a user reads prose (README.md,
docs/*.md, notebooks' markdown cells, the package's docstrings, comments and messages) a
speed (``N tokens/s``) or a time near a conversion (``~N s`` in a paragraph about
converting or de-quantising) must be a figure that ``docs/performance.md`` quotes, written
the same way, or no figure at all with a link there. Code blocks and inline code in
markdown are examples of output (a footer), not claims, and are left out.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import REPO

_NUMBER = r"\d+(?:\.\d+)?(?:\s*[–-]\s*\d+(?:\.\d+)?)?"
SPEED = re.compile(rf"({_NUMBER})\s*(?:tokens/s|tok/s|tokens per second|tokens a second)")
DURATION = re.compile(rf"({_NUMBER})\s*(?:s|seconds)\b")
CONVERSION = re.compile(r"conver|quantis|quantiz", re.I)


def _prose(text: str) -> str:
    """Markdown without fenced blocks and inline code."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _figures(text: str) -> set[str]:
    """Speeds, and times in paragraphs about a conversion, as written (spaces dropped)."""
    found = {m.group(1) for m in SPEED.finditer(text)}
    for paragraph in re.split(r"\n\s*\n", text):
        if CONVERSION.search(paragraph):
            found.update(m.group(1) for m in DURATION.finditer(paragraph))
    return {re.sub(r"\s", "", figure) for figure in found}


def _places() -> dict[str, str]:
    places = {"README.md": _prose((REPO / "README.md").read_text())}
    for doc in sorted((REPO / "docs").glob("*.md")):
        if doc.name != "performance.md":
            places[f"docs/{doc.name}"] = _prose(doc.read_text())
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        markdown = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
        places[f"notebooks/{notebook.name}"] = _prose("\n\n".join(markdown))
    for module in sorted((REPO / "localmind_jupyter").rglob("*.py")):
        places[str(module.relative_to(REPO))] = module.read_text()
    return places


MEASURED = _figures((REPO / "docs" / "performance.md").read_text())


def test_performance_md_has_the_transformers_figures():
    assert {"25.46", "24.1", "8–26", "16"} <= MEASURED


@pytest.mark.parametrize("place", sorted(_places()))
def test_figures_elsewhere_are_those_of_performance_md(place):
    stray = sorted(_figures(_places()[place]) - MEASURED)
    assert not stray, (
        f"{place} quotes {stray}, which docs/performance.md does not: quote its figures "
        "as written there, or link to it without a figure"
    )


def test_a_different_figure_is_found():
    assert _figures("runs at about 8–12 tokens/s") == {"8–12"}
    assert _figures("The first load dequantises it (~17 s on\ntwo cores)") == {"17"}
    assert _figures("loads in 0.2 s") == set()
