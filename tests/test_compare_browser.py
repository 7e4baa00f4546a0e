"""``%%localmind A B`` and ``A B C`` in a real JupyterLab, driven by Chromium through Playwright.

JupyterLab runs as in ``test_magic_browser.py`` (sandboxed folders, token auth); the
kernel's models are three on an Ollama test server with slow tokens, each with an answer
of its own, one of which carries an ``<img onerror>`` payload. The test runs a two-model
and a three-model comparison cell and reads the page: the columns sit side by side
(their boxes share a top edge, left to right), the table has one row per model, the
payload shows as text and never ran. Then the dark theme, and a narrow window where the
columns stack (one under the other, at the same left edge). It saves screenshots of each
(to the ignored ``.cache/screenshots``; ``make screenshots`` writes docs/images).
Without Chromium, Playwright or JupyterLab it is skipped, saying why.
"""

from __future__ import annotations

import itertools
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    TOKEN,
    code_notebook,
    jupyterlab,
    require_browser,
)
from tests.test_magic_browser import _outputs, _run_cell, _shoot, _wait_done

IMAGES = SCREENSHOTS
NOTEBOOK = "compare.ipynb"
TOKEN_DELAY = 0.03
PAYLOAD = '<img src=x onerror="window.__lmPwned = 1">'
ANSWERS = {
    "smollm:135m": "Recursion is when a function **calls itself** on a smaller piece of the "
    "problem, until it reaches a case simple enough to answer directly.",
    "qwen2.5:0.5b": "A recursive function solves a problem by solving a smaller copy of it. "
    f"{PAYLOAD} The *base case* stops the chain of calls.",
    "llama3.2:1b": "Think of Russian dolls: to count them, open one and count the rest the "
    "same way, until you reach the smallest doll.",
}
TWO = "%%localmind ollama:smollm:135m ollama:qwen2.5:0.5b -t 0 --seed 1\n"
THREE = "%%localmind ollama:smollm:135m ollama:qwen2.5:0.5b ollama:llama3.2:1b -t 0 --seed 1\n"
PROMPT = "Explain recursion to a ten-year-old in two sentences."
SHOTS = (
    "compare-two.png",
    "compare-three.png",
    "compare-two-dark.png",
    "compare-three-dark.png",
    "compare-narrow.png",
)


@pytest.fixture
def sync_playwright() -> Any:
    return require_browser()


def _words(text: str) -> Any:
    return lambda _messages: [word + " " for word in text.split()]


@pytest.fixture
def lab(tmp_path: Path, isolated_home: Path, sync_playwright: Any) -> Iterator[tuple[str, Any]]:
    from tests.servers.ollama_server import FakeModel, OllamaTestServer

    server = OllamaTestServer([FakeModel(name, reply=_words(a)) for name, a in ANSWERS.items()])
    server.start()
    server.token_delay = TOKEN_DELAY
    (isolated_home / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            backends:
              ollama:
                settings: {{base_url: "{server.url}"}}
            """
        )
    )
    notebook = code_notebook(
        "%load_ext localmind_jupyter",
        TWO + PROMPT,
        THREE + PROMPT,
        "from localmind_jupyter import ModelManager\n\nModelManager()",
    )
    try:
        with jupyterlab(tmp_path, {NOTEBOOK: notebook}, isolated_home) as base:
            yield base, server
    finally:
        server.stop()


def test_compare_columns_in_jupyterlab(
    sync_playwright: Any, lab: tuple[str, Any], tmp_path: Path
) -> None:
    base, server = lab
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        try:
            _drive(page, base, server)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()
    assert not dialogs, f"model text opened a dialog: {dialogs}"
    for name in SHOTS:
        assert (IMAGES / name).stat().st_size > 5_000


def _boxes(cell: Any) -> list[dict[str, float]]:
    """The bounding boxes of the comparison's column boxes, left to right as in the DOM."""
    boxes: list[dict[str, float]] = cell.evaluate(
        """c => Array.from(c.querySelectorAll('.lm-compare > div')).map(d => {
               const r = d.getBoundingClientRect();
               return {x: r.x, y: r.y, width: r.width, height: r.height};
           })"""
    )
    return boxes


def _side_by_side(boxes: list[dict[str, float]]) -> bool:
    return all(
        abs(a["y"] - b["y"]) < 2 and b["x"] >= a["x"] + a["width"] - 1
        for a, b in itertools.pairwise(boxes)
    )


def _stacked(boxes: list[dict[str, float]]) -> bool:
    return all(
        abs(a["x"] - b["x"]) < 2 and b["y"] >= a["y"] + a["height"] - 1
        for a, b in itertools.pairwise(boxes)
    )


def _run_compare(page: Any, index: int, models: list[str]) -> Any:
    cell = _run_cell(page, index)
    _wait_done(cell, timeout=60)
    page.wait_for_timeout(300)  # the last display update
    view = cell.locator(".lm-compare")
    assert view.count() == 1, _outputs(cell)
    assert view.locator(":scope > div").count() == len(models)
    text = view.inner_text()
    for model in models:
        assert model in text, text
        plain = ANSWERS[model].replace("**", "").replace("*", "").replace(PAYLOAD + " ", "")
        assert plain.split()[-1] in text, f"{model}'s answer is not complete: {text}"
    rows = cell.locator("table tbody tr")
    assert rows.count() == len(models), "the table has one row per model"
    for i, model in enumerate(models):
        assert rows.nth(i).inner_text().startswith(f"ollama:{model}")
        assert "stop" in rows.nth(i).inner_text()
    # The payload is text in its column, never an element, and it never ran.
    if "qwen2.5:0.5b" in models:
        assert '<img src=x onerror="window.__lmPwned = 1">' in text
    assert cell.locator(".jp-OutputArea img").count() == 0
    assert page.evaluate("window.__lmPwned") is None
    assert "Traceback" not in cell.inner_text()
    return cell


def _dark(page: Any) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
    page.wait_for_timeout(500)  # let the theme's stylesheet apply


def _drive(page: Any, base: str, server: Any) -> None:
    page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={TOKEN}")
    page.wait_for_selector(
        ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=60_000
    )
    _wait_done(_run_cell(page, 0))
    started = time.monotonic()
    two = _run_compare(page, 1, ["smollm:135m", "qwen2.5:0.5b"])
    took = time.monotonic() - started
    slowest = max(len(a.split()) for a in ANSWERS.values()) * TOKEN_DELAY
    three = _run_compare(page, 2, list(ANSWERS))
    assert _side_by_side(_boxes(two)) and _side_by_side(_boxes(three)), (
        _boxes(two),
        _boxes(three),
    )
    chats = [body["model"] for _m, path, body in server.requests if path == "/api/chat"]
    assert sorted(chats) == sorted(["smollm:135m", "qwen2.5:0.5b", *ANSWERS])
    _shoot(page, two, "compare-two.png")
    _shoot(page, three, "compare-three.png")

    _dark(page)
    background = two.locator(".lm-compare > div").first.evaluate(
        "d => getComputedStyle(d).backgroundColor"
    )
    assert background != "rgb(255, 255, 255)", "the column kept a light background"
    _shoot(page, two, "compare-two-dark.png")
    _shoot(page, three, "compare-three-dark.png")

    # Narrow: the grid's columns stack, one under the other, nothing sticks out sideways.
    page.set_viewport_size({"width": 820, "height": 1800})
    page.wait_for_timeout(500)
    three.scroll_into_view_if_needed()
    boxes = _boxes(three)
    assert _stacked(boxes), boxes
    area = three.locator(".jp-OutputArea-output").first.bounding_box()
    assert all(b["x"] + b["width"] <= area["x"] + area["width"] + 1 for b in boxes), boxes
    _shoot(page, three, "compare-narrow.png")
    print(f"two models side by side took {took:.2f} s in the page (slowest answer {slowest:.2f} s)")


def test_compare_from_the_model_manager_in_jupyterlab(
    sync_playwright: Any, lab: tuple[str, Any], tmp_path: Path
) -> None:
    """The manager's Compare panel: select two models, type, press Compare, read the view."""
    base, server = lab
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={TOKEN}")
            page.wait_for_selector(
                ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status=idle]",
                timeout=60_000,
            )
            cell = _run_cell(page, 3)
            panel = cell.locator(".localmind-compare")
            select = panel.locator("select")
            select.locator("option", has_text="ollama:qwen2.5:0.5b").wait_for(timeout=30_000)
            select.select_option(["ollama:smollm:135m", "ollama:qwen2.5:0.5b"])
            panel.locator("textarea").fill(PROMPT)
            panel.get_by_role("button", name="Compare").click()
            panel.locator("table tbody tr").nth(1).wait_for(timeout=30_000)
            view = panel.locator(".lm-compare")
            assert view.locator(":scope > div").count() == 2
            text = view.inner_text()
            assert "calls itself" in text and "stops the chain of calls." in text, text
            assert PAYLOAD in text  # shown as text ...
            assert panel.locator("img").count() == 0  # ... never an element
            assert page.evaluate("window.__lmPwned") is None
            assert _side_by_side(_boxes(cell))
            chats = [body["model"] for _m, path, body in server.requests if path == "/api/chat"]
            assert sorted(chats) == ["qwen2.5:0.5b", "smollm:135m"]
            page.mouse.move(0, 0)
            panel.screenshot(path=str(IMAGES / "compare-manager.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()
    assert (IMAGES / "compare-manager.png").stat().st_size > 5_000
