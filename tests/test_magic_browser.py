"""``%%localmind`` in a real JupyterLab, driven by Chromium through Playwright.

JupyterLab runs on 127.0.0.1 with token auth and every Jupyter/IPython folder in a
temporary directory; the kernel's LocalMind config makes ``ollama:smollm:135m`` on an
Ollama test server with slow tokens the default model. The test opens the quickstart
notebook, watches the first answer grow in the page and complete, checks the stats
footer, then interrupts a long answer from the toolbar: generation stops at the
server, the partial answer stays and the "stopped" note shows. It saves the
screenshots used in the docs. Without Chromium, Playwright or JupyterLab it is
skipped, saying why.
"""

from __future__ import annotations

import json
import re
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
    jupyterlab,
    require_browser,
)
from tests.conftest import REPO, free_port

IMAGES = SCREENSHOTS
QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"
MODEL = "ollama:smollm:135m"
TOKEN_DELAY = 0.1  # 40 pieces: about 4 s of visible streaming

ANSWER = (  # 40 words, one piece each
    "Paris is the capital of France. It lies on the Seine in the north of the country, "
    "and with about two million people it is also the largest French city, known for "
    "its museums, its cafés and the Eiffel Tower."
)
COLOURS = (
    "The three primary colours of paint are red, yellow and blue. Mixed in pairs they "
    "give the secondary colours: orange, green and purple."
)
STORY = (  # 73 words: the part shown before the interrupt does not repeat
    "The Seine rises on the Langres plateau in Burgundy, more than four hundred metres "
    "above the sea. It turns north-west through Champagne, meets the Aube and the Yonne, "
    "and reaches Paris, where it passes under thirty-seven bridges and past the islands "
    "of the Cité and Saint-Louis. Below the city it winds in great loops through "
    "Normandy, past Rouen and its cathedral, and at last opens into the Channel between "
    "Le Havre and Honfleur. "
)
LONG_PIECES = [word + " " for word in (STORY * 20).split()][:400]
LONG_PROMPT = "%%localmind\nTell me the story of the Seine, from its source to the sea."
STOPPED_NOTE = "stopped — the partial answer is kept above"

# The cells of the quickstart this test runs (indices among all its cells).
LOAD_EXT, FIRST_ASK, STATS_ASK = 1, 3, 5
LONG_ASK = STATS_ASK + 1  # a cell the test adds after the stats example


@pytest.fixture
def sync_playwright() -> Any:
    return require_browser()


def _notebook() -> dict[str, Any]:
    """The quickstart as a user gets it after "Clear All Outputs", plus a long question.

    Cleared, so every prompt starts as ``[ ]:`` and no saved answer is mistaken for a
    new one.
    """
    notebook = json.loads(QUICKSTART.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    cells = notebook["cells"]
    assert "%%localmind" in "".join(cells[FIRST_ASK]["source"]), "the quickstart changed"
    assert "--max-tokens 40" in "".join(cells[STATS_ASK]["source"]), "the quickstart changed"
    long_ask = {
        "cell_type": "code",
        "id": "long-answer",
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": LONG_PROMPT,
    }
    cells.insert(LONG_ASK, long_ask)
    return notebook


@pytest.fixture
def lab(tmp_path: Path, isolated_home: Path, sync_playwright: Any) -> Iterator[tuple[str, Any]]:
    """JupyterLab serving the quickstart, and the slow Ollama its kernel answers from."""
    from tests.servers.ollama_server import OllamaTestServer

    server = OllamaTestServer().start()
    server.token_delay = TOKEN_DELAY
    (isolated_home / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            default_model: {MODEL}
            backends:
              ollama:
                settings: {{base_url: "{server.url}"}}
              lmstudio:
                type: openai
                settings: {{preset: lmstudio, base_url: "http://127.0.0.1:{free_port()}/v1"}}
            """
        )
    )
    try:
        with jupyterlab(tmp_path, {QUICKSTART.name: _notebook()}, isolated_home) as base:
            yield base, server
    finally:
        server.stop()


def test_streaming_and_interrupt_in_jupyterlab(
    sync_playwright: Any, lab: tuple[str, Any], tmp_path: Path
) -> None:
    base, server = lab
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1300})
        try:
            _drive(page, base, server)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()
    for name in ("streaming-partial.png", "streaming-answer.png", "interrupted.png"):
        assert (IMAGES / name).stat().st_size > 5_000


def _cell(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)


def _prompt(cell: Any) -> str:
    return cell.locator(".jp-InputPrompt").first.inner_text().replace("\u00a0", " ").strip()


def _outputs(cell: Any) -> list[str]:
    """The text of each output of the cell, as the page shows it, read in one go."""
    return cell.evaluate(
        """c => Array.from(c.querySelectorAll('.jp-OutputArea-output'))
                    .map(o => o.innerText.trim())"""
    )


def _shoot(page: Any, cell: Any, name: str) -> None:
    """A picture of the cell and its output, for the docs.

    The bottom edge is left out: the next cell, selected after Shift+Enter, draws
    its blue focus border there.
    """
    page.mouse.move(0, 0)  # no hover highlight in the picture
    box = cell.bounding_box()
    clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"] - 4}
    page.screenshot(path=str(IMAGES / name), clip=clip)


def _run_cell(page: Any, index: int) -> Any:
    """Run one cell and return it once the kernel has taken it (its prompt left ``[ ]:``).

    Right after the kernel reports idle, Lab sometimes drops a run request (the
    prompt stays ``[ ]:``); the run is repeated then, never while one is pending.
    """
    cell = _cell(page, index)
    for _attempt in range(4):
        try:
            cell.locator(".jp-InputArea-editor").first.click(timeout=5_000)
        except Exception:  # noqa: BLE001 - something (a dialog) covered the cell: dismiss it
            page.keyboard.press("Escape")
            continue
        page.keyboard.press("Escape")
        page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if _prompt(cell) != "[ ]:":
                return cell
            time.sleep(0.1)
    pytest.fail(f"JupyterLab did not run cell {index} (its prompt stayed [ ]:)")


def _wait_done(cell: Any, timeout: float = 30) -> None:
    """Until the cell's prompt shows an execution count (``[3]:``), not ``[*]:``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.fullmatch(r"\[\d+\]:", _prompt(cell)):
            return
        time.sleep(0.05)
    pytest.fail(f"the cell did not finish within {timeout} s: prompt {_prompt(cell)}")


def _pieces(text: str) -> list[str]:
    """One piece per word, as a model streams them."""
    return [word + " " for word in text.split()]


def _watch_stream(page: Any, cell: Any, final: str, shot: str | None = None) -> list[str]:
    """Every distinct text the answer showed until it was complete, in order.

    With ``shot``, the cell is photographed once, about half-way through the answer.
    """
    states: list[str] = []
    shot_taken = shot is None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        outputs = _outputs(cell)
        text = outputs[0] if outputs else ""
        if text and (not states or states[-1] != text):
            states.append(text)
        if not shot_taken and 0.3 * len(final) < len(text) < 0.7 * len(final):
            _shoot(page, cell, shot)
            shot_taken = True
        if text == final and re.fullmatch(r"\[\d+\]:", _prompt(cell)):
            return states
        time.sleep(0.03)
    pytest.fail(f"the answer did not complete in the page; it went {states}")


def _drive(page: Any, base: str, server: Any) -> None:
    """Open the quickstart, run its first answers, interrupt a long one, take screenshots."""
    page.goto(f"{base}/lab/tree/{QUICKSTART.name}?token={TOKEN}")
    page.wait_for_selector(
        ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=60_000
    )
    _wait_done(_run_cell(page, LOAD_EXT))

    # 1. The first answer streams into the page, piece by piece, then stays complete.
    server.reply_pieces = _pieces(ANSWER)
    final = ANSWER
    cell = _run_cell(page, FIRST_ASK)
    states = _watch_stream(page, cell, final, shot="streaming-partial.png")
    growing = [s for s in states if not s.startswith("⏳") and s != final]
    assert len(growing) >= 3, f"the answer did not grow in the page, it showed {states}"
    assert all(final.startswith(s) for s in growing), f"partial texts are not prefixes: {states}"
    lengths = [len(s) for s in growing]
    assert lengths == sorted(lengths), f"the answer shrank while streaming: {states}"
    assert growing[0].count(" ") < 10, f"the first words came late: {growing[0]!r}"
    page.wait_for_timeout(300)
    assert _outputs(cell) == [final], "this cell has --no-stats: only the answer shows"
    assert cell.locator(".jp-OutputArea .jp-RenderedHTML").count() == 1
    assert not server.disconnected.is_set(), "a complete answer must not drop the connection"

    # 2. The stats example: another streaming answer, then the one-line footer.
    server.reply_pieces = _pieces(COLOURS)
    final = COLOURS
    cell = _run_cell(page, STATS_ASK)
    states = _watch_stream(page, cell, final)
    assert len([s for s in states if not s.startswith("⏳") and s != final]) >= 3, states
    footer = cell.locator(".jp-OutputArea-output").nth(1)
    footer.wait_for(timeout=5_000)
    footer_text = footer.inner_text().strip()
    words = len(COLOURS.split())
    numbers = r"first token \d+\.\d\d s · [\d.]+ tokens/s · (\d+\.\d) s"
    found = re.fullmatch(rf"{re.escape(MODEL)} · {words} tokens · {numbers}", footer_text)
    assert found, f"unexpected footer: {footer_text!r}"
    assert float(found[1]) >= words * TOKEN_DELAY * 0.8, f"the duration is off: {footer_text}"
    assert _outputs(cell)[0] == final
    _shoot(page, cell, "streaming-answer.png")

    # 3. A long answer, interrupted from the toolbar while it streams.
    server.reply_pieces = LONG_PIECES
    long_text = "".join(LONG_PIECES).strip()
    cell = _run_cell(page, LONG_ASK)
    deadline = time.monotonic() + 15
    shown = ""
    while time.monotonic() < deadline:
        outputs = _outputs(cell)
        shown = outputs[0] if outputs else ""
        if not shown.startswith("⏳") and shown.count(" ") >= 30:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the long answer did not start streaming in the page: {shown!r}")
    assert long_text.startswith(shown)
    assert not server.disconnected.is_set()
    interrupt = page.locator(
        '.jp-NotebookPanel-toolbar [data-command="notebook:interrupt-kernel"]'
    ).first
    interrupt.click()
    clicked = time.monotonic()
    assert server.disconnected.wait(3), "the server kept generating after the interrupt"
    stop_delay = time.monotonic() - clicked
    cell.get_by_text(STOPPED_NOTE).wait_for(timeout=10_000)
    _wait_done(cell, timeout=10)
    sent = server.chunks_sent
    assert sent < 100, f"{sent} of 400 pieces were generated: the interrupt came late"
    page.wait_for_timeout(2 * TOKEN_DELAY * 1000 + 200)
    assert server.chunks_sent == sent, "generation went on after the connection closed"

    outputs = _outputs(cell)
    assert len(outputs) == 3, f"expected answer, note and footer, got {outputs}"
    partial, note, footer_text = outputs
    assert partial.startswith(shown) and long_text.startswith(partial), (
        f"the partial answer was not kept: {partial!r}"
    )
    assert len(partial) < len(long_text) / 2
    assert note == STOPPED_NOTE
    assert footer_text.startswith(f"{MODEL} · ") and footer_text.endswith(" · stopped"), footer_text
    assert cell.locator(".jp-OutputArea .jp-RenderedHTML").count() == 3
    assert "Traceback" not in cell.inner_text() and "KeyboardInterrupt" not in cell.inner_text()
    page.wait_for_selector(
        ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=10_000
    )
    _shoot(page, cell, "interrupted.png")
    print(
        f"first answer: {len(growing)} partial states in the page; interrupt to closed "
        f"connection: {stop_delay:.2f} s, {sent} of 400 pieces sent"
    )
