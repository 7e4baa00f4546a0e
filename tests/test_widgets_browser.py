"""The model manager in a real JupyterLab, driven by Chromium through Playwright.

JupyterLab runs on 127.0.0.1 with token auth and every Jupyter/IPython folder in a
temporary directory; the kernel's LocalMind config points at an Ollama test server
run by this test. The test downloads a model from the panel, watches the bar move
to done, checks the catalog marks it installed, and saves the screenshots used in
docs/widgets.md. Without Chromium, Playwright or JupyterLab it is skipped, saying why.
"""

from __future__ import annotations

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
from tests.conftest import free_port

IMAGES = SCREENSHOTS
MODEL = "tinyllama:latest"


@pytest.fixture
def sync_playwright() -> Any:
    return require_browser()


@pytest.fixture
def lab(tmp_path: Path, isolated_home: Path, sync_playwright: Any) -> Iterator[tuple[str, Any]]:
    """JupyterLab serving a notebook that shows the model manager, and the Ollama it uses."""
    from tests.servers.ollama_server import OllamaTestServer

    server = OllamaTestServer().start()
    server.pull_delay = 0.12  # ~20 steps of 64 KiB: about 2.5 s of visible progress
    (isolated_home / "config.yaml").write_text(
        textwrap.dedent(
            f"""
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
        with jupyterlab(
            tmp_path,
            {"manager.ipynb": code_notebook("%load_ext localmind_jupyter\n%localmind manager")},
            isolated_home,
        ) as base:
            yield base, server
    finally:
        server.stop()


def _bar_state(page: Any) -> tuple[float, tuple[float, ...]] | None:
    """The download bar's width in percent, and where the bar and the row's button sit.

    Read in one go, so both describe the same moment; None before the row exists.
    """
    found = page.evaluate(
        """() => {
            const bar = document.querySelector('.localmind-model-manager .progress-bar');
            if (!bar) return null;
            const track = bar.parentElement.getBoundingClientRect();
            const button = bar.closest('.widget-hbox').querySelector('button');
            const box = button.getBoundingClientRect();
            return [parseFloat(bar.style.width || '0'), track.x, track.width, box.x, box.width];
        }"""
    )
    return None if found is None else (found[0], tuple(found[1:]))


def test_download_from_the_model_manager_in_jupyterlab(
    sync_playwright: Any, lab: tuple[str, Any], tmp_path: Path
) -> None:
    base, server = lab
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1500})
        try:
            _drive(page, base, server)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()
    for name in ("model-manager.png", "model-manager-downloading.png", "model-manager-dark.png"):
        assert (IMAGES / name).stat().st_size > 10_000


def _run_first_cell(page: Any, panel: Any) -> None:
    """Run the notebook's cell and wait for the panel.

    Right after the kernel reports idle, Lab sometimes drops a run request (the
    prompt stays ``[ ]:``); the run is repeated then, never while one is pending.
    """
    prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    for _attempt in range(4):
        try:
            page.locator(".jp-Cell .jp-InputArea-editor").first.click(timeout=5_000)
        except Exception:  # noqa: BLE001 - something (a dialog) covered the cell: dismiss it
            page.keyboard.press("Escape")
            continue
        page.keyboard.press("Escape")
        page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if prompt.inner_text().replace("\u00a0", " ").strip() != "[ ]:":
                panel.wait_for(timeout=30_000)
                return
            time.sleep(0.1)
    pytest.fail("JupyterLab did not run the cell (its prompt stayed [ ]:)")


def _drive(page: Any, base: str, server: Any) -> None:
    """Open the notebook, run the cell, download from the panel, take the screenshots."""
    page.goto(f"{base}/lab/tree/manager.ipynb?token={TOKEN}")
    page.wait_for_selector(
        ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=60_000
    )
    panel = page.locator(".localmind-model-manager")
    _run_first_cell(page, panel)
    # The probe runs on a thread in the kernel: both backends get a status badge.
    page.get_by_text("connection refused at http://127.0.0.1").first.wait_for(timeout=15_000)
    select = page.locator(f'button[title="Select {MODEL}"]')
    select.wait_for(timeout=15_000)
    panel.get_by_text("installed").first.wait_for()

    select.click()
    download = panel.locator("button", has_text="Download")
    page.wait_for_function("b => !b.disabled", arg=download.element_handle(), timeout=10_000)
    download.click()

    seen: list[float] = []
    positions: set[tuple[float, ...]] = set()
    shot_taken = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = _bar_state(page)
        if state is not None:
            value, geometry = state
            seen.append(value)
            if 0 < value < 100:
                positions.add(geometry)
            if not shot_taken and 15 <= value <= 90:
                panel.screenshot(path=str(IMAGES / "model-manager-downloading.png"))
                shot_taken = True
        if page.locator(".localmind-model-manager .progress-bar-success").count():
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the download did not finish in the browser; bar went {seen}")

    assert shot_taken, f"the bar never showed mid-download progress: {seen}"
    moving = [v for v in seen if 0 < v < 100]
    assert len(set(moving)) >= 2, f"the bar did not move: {seen}"
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert len(positions) == 1, f"the row's parts moved while the bar moved: {positions}"
    panel.get_by_text("installed — ready to use").wait_for(timeout=10_000)
    assert page.locator(".localmind-model-manager .progress-bar").first.evaluate(
        "b => parseFloat(b.style.width)"
    ) == pytest.approx(100)

    # The catalog marks the model installed without a refresh.
    row = page.locator(".widget-hbox", has=page.locator(f'button[title="Select {MODEL}"]'))
    row.get_by_text("installed", exact=True).wait_for(timeout=10_000)
    assert any(path == "/api/pull" for _m, path, _b in server.requests)
    assert MODEL in server.installed

    page.mouse.move(0, 0)  # no hover highlight in the picture
    panel.screenshot(path=str(IMAGES / "model-manager.png"))

    # The same panel in the dark theme: only JupyterLab's CSS variables, so it follows.
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
    page.wait_for_timeout(500)  # let the theme's stylesheet apply
    page.mouse.move(0, 0)
    panel.screenshot(path=str(IMAGES / "model-manager-dark.png"))

    # Narrow: everything wraps, nothing sticks out sideways.
    page.set_viewport_size({"width": 720, "height": 1500})
    page.wait_for_timeout(300)
    assert panel.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "overflows when narrow"
