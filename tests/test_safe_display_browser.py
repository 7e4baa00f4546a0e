"""Hostile answers in a real JupyterLab (Chromium through Playwright): nothing runs, nothing loads.

The Ollama test server answers every cell with safe Markdown followed by the payloads
that ran in JupyterLab before issue 11 was fixed (``tests/untrusted.py``): scripts,
event handlers, iframes, remote images and styles, ``javascript:`` links. Each payload
would set ``document.title`` and call a loopback listener. The notebook asks once per
output format while the answer streams; afterwards the title is unchanged, the
listener got no request, and the safe Markdown rendered (emphasis, a table, a code
block, an https link, math typeset by MathJax). Without Chromium, Playwright or
JupyterLab it is skipped, saying why.
"""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from tests.untrusted import SAFE_MARKDOWN, payloads

MODEL = "ollama:smollm:135m"
TITLE = "pwned-by-the-model"
# Code last: its answer offers a new cell below, which would shift the cells after it.
FORMATS = ("markdown", "text", "json", "html", "math", "code")


class Listener:
    """A loopback HTTP server that records every request: any hit is a leak."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                hits.append(f"{self.command} {self.path}")
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_OPTIONS = _record

            def log_message(self, *args: object) -> None:
                pass

        self.hits = hits
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def _notebook() -> dict[str, Any]:
    sources = [f"%%localmind -f {fmt} --no-history\nanswer in {fmt}" for fmt in FORMATS]
    return code_notebook("%load_ext localmind_jupyter", *sources)


@pytest.fixture
def sync_playwright() -> Any:
    return require_browser()


@pytest.fixture
def lab(
    tmp_path: Path, isolated_home: Path, sync_playwright: Any
) -> Iterator[tuple[str, Any, Listener]]:
    """JupyterLab, the Ollama its kernel asks, and the listener the payloads call."""
    from tests.servers.ollama_server import OllamaTestServer, split_words

    with Listener() as listener, OllamaTestServer() as server:
        answer = "\n\n".join([SAFE_MARKDOWN, *payloads(listener.port, TITLE)])
        server.reply_pieces = split_words(answer)
        server.token_delay = 0.01  # about 2 s per answer: many partial renders
        (isolated_home / "config.yaml").write_text(
            textwrap.dedent(
                f"""
                default_model: {MODEL}
                backends:
                  ollama:
                    settings: {{base_url: "{server.url}"}}
                """
            )
        )
        with jupyterlab(tmp_path, {"hostile.ipynb": _notebook()}, isolated_home) as base:
            yield base, server, listener


def test_hostile_answers_run_nothing_and_load_nothing(
    sync_playwright: Any, lab: tuple[str, Any, Listener], tmp_path: Path
) -> None:
    from tests.test_magic_browser import _run_cell, _wait_done

    base, _server, listener = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1300})
        page.on("dialog", lambda dialog: dialog.dismiss())
        try:
            page.goto(f"{base}/lab/tree/hostile.ipynb?token={TOKEN}")
            page.wait_for_selector(
                ".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status=idle]",
                timeout=60_000,
            )
            title = page.title()
            _wait_done(_run_cell(page, 0))
            for index in range(1, len(FORMATS) + 1):
                _wait_done(_run_cell(page, index), timeout=60)
            _check(page, title, listener)
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()


def _check(page: Any, title: str, listener: Listener) -> None:
    markdown = page.locator(".jp-Notebook .jp-Cell").nth(1 + FORMATS.index("markdown"))
    time.sleep(2)  # room for any late load or handler to fire
    assert page.title() == title, "an answer ran script in the page"
    assert page.evaluate("window.pwned") is None, "an answer ran script in the page"
    assert listener.hits == [], f"the page fetched what an answer named: {listener.hits}"

    found = page.evaluate(
        """() => {
            const within = (sel, q) => Array.from(document.querySelectorAll(sel))
                .flatMap(a => Array.from(a.querySelectorAll(q)));
            const all = q => within('.jp-Notebook .jp-OutputArea-output', q);
            return {
                live: all('script, iframe, object, embed, svg:not(mjx-container svg), style, '
                          + 'link, form, input, video, audio, base, meta').map(e => e.tagName),
                handlers: all('*').flatMap(e => e.getAttributeNames()
                    .filter(n => n.startsWith('on')).map(n => e.tagName + ' ' + n)),
                // In HTML outputs (text outputs autolink what they show, needing a click).
                urls: within('.jp-OutputArea .jp-RenderedHTMLCommon', '[href], [src]')
                          .map(e => e.getAttribute('href') || e.getAttribute('src'))
                          .filter(u => !/^(https?:|mailto:|data:image\\/)/i.test(u.trim())),
            };
        }"""
    )
    assert found == {"live": [], "handlers": [], "urls": []}, found

    # MathJax typesets HTML outputs once attached: the math of the answer shows as math.
    markdown.locator("mjx-container").first.wait_for(timeout=20_000)
    # The safe Markdown still renders. (text_content: Lab skips painting off-screen cells,
    # and innerText is empty there.)
    assert markdown.locator("em", has_text="emphasis").count() == 1
    assert markdown.locator("strong", has_text="strong").count() == 1
    assert markdown.locator("table th", has_text="right").count() == 1
    assert "not bold" in markdown.locator("pre code").first.text_content()
    assert markdown.locator("pre code b").count() == 0
    link = markdown.locator('a[href="https://example.com/page"]')
    assert link.count() == 1 and link.text_content() == "web link"
    assert markdown.locator("li", has_text="second").count() == 1
    # The payloads stay visible as text, so the reader sees what the model wrote.
    assert "<script>" in markdown.text_content()
    assert "[image: x]" in markdown.text_content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    markdown.evaluate("cell => cell.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    box = markdown.bounding_box()
    clip = {"x": box["x"], "y": max(box["y"], 0), "width": box["width"], "height": 1000}
    page.screenshot(path=str(SCREENSHOTS / "hostile-answer.png"), clip=clip)
    code = page.locator(".jp-Notebook .jp-Cell").nth(1 + FORMATS.index("code"))
    assert code.locator("pre code").first.text_content() == 'print("<b>not bold</b>")'
