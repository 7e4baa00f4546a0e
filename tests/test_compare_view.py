"""The side-by-side view's HTML: a model cannot close its column or style the page, in any
format and state; the frame is made of JupyterLab's CSS variables and stacks when narrow."""

from __future__ import annotations

import re

import pytest

from localmind_jupyter.backends._response import ModelResponse
from localmind_jupyter.magics.compare_view import Column, columns_html, columns_text

ESCAPE = '</div></div></div><div style="position:fixed;inset:0">x</div><script>alert(1)</script>'


def _columns(state: str) -> list[Column]:
    hostile = Column("ollama", "m1", pieces=[ESCAPE], trace=[ESCAPE])
    calm = Column("openai", "m2", pieces=["fine"])
    if state != "streaming":
        reason = {"done": "stop", "stopped": "cancelled", "error": "error"}[state]
        hostile.response = ModelResponse(ESCAPE, "m1", "ollama", finish_reason=reason)
        hostile.error = ESCAPE if state == "error" else None
        calm.response = ModelResponse("fine", "m2", "openai", finish_reason="stop")
    return [hostile, calm]


@pytest.mark.parametrize("fmt", ["markdown", "html", "text", "code", "json", "math"])
@pytest.mark.parametrize("state", ["streaming", "done", "stopped", "error"])
def test_a_model_cannot_leave_its_column(fmt: str, state: str) -> None:
    html = columns_html(_columns(state), fmt)
    assert "<script" not in html
    assert not re.search(r"<[^>]*position:fixed", html), "the model's style became a tag's"
    # Every div is closed where it was opened: the second column is still a column.
    assert html.count("<div") == html.count("</div>")
    depth, tops = 0, 0
    for tag in re.findall(r"</?div\b", html):
        depth += 1 if tag == "<div" else -1
        assert depth >= 0
        tops += depth == 2 and tag == "<div"  # a column, right inside the grid
    assert depth == 0 and tops == 2, "the grid does not hold exactly the two columns"


def test_the_frame_uses_theme_variables_and_stacks_when_narrow() -> None:
    html = columns_html(_columns("done"))
    assert "repeat(auto-fit,minmax(min(22em,100%),1fr))" in html
    colours = re.findall(r"(?:color|background|border(?:-top|-bottom)?):([^;\"]+)", html)
    assert colours and all("var(--jp-" in c for c in colours), colours
    assert "#" not in "".join(colours)


def test_the_plain_text_names_each_model_and_its_state() -> None:
    text = columns_text(_columns("error"))
    assert text.index("── ollama:m1 (failed) ──") < text.index("── openai:m2 ──")
