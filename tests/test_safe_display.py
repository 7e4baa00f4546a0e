"""Model output is untrusted (issue 11): every bundle the magic publishes, in every format
and state, carries only sanitized HTML, while safe Markdown still renders.

The first tests call the bundle builders directly; the kernel test captures the real
IOPub messages of ``%%localmind`` answering hostile text from the Ollama test server.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localmind_jupyter import safe_display
from localmind_jupyter.magics.render import (
    FORMATS,
    _note_bundle,
    finalize,
    streaming_bundle,
)
from tests.untrusted import SAFE_MARKDOWN, audit_html, payloads

PAYLOADS = payloads(port=9)
HOSTILE = "\n\n".join([SAFE_MARKDOWN, *PAYLOADS])
#: Mimetypes JupyterLab renders as live markup when the output is trusted.
LIVE_MARKUP = {"text/markdown", "application/javascript", "image/svg+xml"}


def assert_safe(bundle: dict, *, remote_images: bool = False) -> None:
    assert not LIVE_MARKUP & set(bundle), f"raw markup published: {set(bundle)}"
    assert "text/plain" in bundle
    if "text/html" in bundle:
        problems = audit_html(bundle["text/html"], remote_images=remote_images)
        assert not problems, problems


def prefixes(text: str, step: int = 7) -> list[str]:
    """The partial answers a stream shows, cut anywhere (inside a tag, a URL, a fence)."""
    return [text[:end] for end in range(0, len(text), step)] + [text]


# --- every format, every state ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_streamed_state_of_every_format_is_safe(fmt):
    for partial in prefixes(HOSTILE, step=13):
        assert_safe(streaming_bundle(partial, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_every_final_format_is_safe(fmt, payload):
    for text in (payload, f"{SAFE_MARKDOWN}\n{payload}", f"```\n{payload}\n```"):
        assert_safe(finalize(text, fmt).bundle)


def test_json_answers_are_shown_as_escaped_code():
    text = '{"html": "<img src=x onerror=alert(1)>", "link": "javascript:alert(1)"}'
    final = finalize(text, "json")
    assert final.value["html"] == "<img src=x onerror=alert(1)>", "the stored value is untouched"
    assert_safe(final.bundle)
    assert final.bundle["text/html"].startswith('<pre><code class="language-json">')
    assert "&lt;img src=x onerror=alert(1)&gt;" in final.bundle["text/html"]


def test_code_answers_keep_the_code_and_escape_it():
    text = 'Here:\n```html\n<script>alert("x")</script>\n```\n<img src=x onerror=alert(2)>'
    final = finalize(text, "code")
    assert final.value == final.next_input == '<script>alert("x")</script>'
    assert final.bundle["text/html"] == (
        '<pre><code class="language-html">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
        "</code></pre>"
    )
    hostile_lang = finalize('```"><img src=x onerror=alert(1)>\nx\n```', "code")
    assert_safe(hostile_lang.bundle)


def test_html_format_is_sanitized_not_dropped():
    final = finalize(
        '<h2 onclick="x()">Title</h2><p>a <b>b</b> <img src=x onerror=y()></p>', "html"
    )
    assert final.value.startswith("<h2 onclick"), "-o keeps the raw answer"
    assert final.bundle["text/html"] == "<h2>Title</h2><p>a <b>b</b> <img></p>"


def test_math_format_is_latex_text_only():
    bundle = finalize("<script>alert(1)</script> x^2", "math").bundle
    assert set(bundle) == {"text/plain", "text/latex"}
    assert finalize(r"e^{i\pi} + 1 = 0", "math").bundle["text/latex"] == r"$$e^{i\pi} + 1 = 0$$"


def test_notes_and_footer_escape_server_text():
    hostile = "model <img src=x onerror=alert(1)> said *no* [x](javascript:alert(1))"
    for error in (False, True):
        bundle = _note_bundle(hostile, error=error)
        assert_safe(bundle)
        assert "&lt;img src=x onerror=alert(1)&gt;" in bundle["text/html"]
        assert bundle["text/plain"].endswith(hostile)


# --- safe Markdown still renders -------------------------------------------------------------


def test_safe_markdown_renders_to_the_expected_tags():
    html = finalize(SAFE_MARKDOWN, "markdown").bundle["text/html"]
    for expected in (
        "<em>emphasis</em>",
        "<strong>strong</strong>",
        "<code>inline code</code>",
        "<ul>\n<li>first</li>",
        "<ol>\n<li>one</li>",
        "<table>",
        '<th style="text-align:right">right</th>',
        '<pre><code class="language-python">print("&lt;b&gt;not bold&lt;/b&gt;")',
        "$x^2 + y^2$",  # left as TeX for MathJax
        "$$\\int_0^1 f(x)\\,dx$$",
        '<a href="https://example.com/page" rel="noopener noreferrer nofollow">web link</a>',
        '<a href="https://example.org" rel="noopener noreferrer nofollow">https://example.org</a>',
    ):
        assert expected in html, f"{expected!r} missing from\n{html}"
    assert_safe({"text/plain": SAFE_MARKDOWN, "text/html": html})


def test_raw_html_in_markdown_stays_visible_text():
    html = safe_display.markdown_html("Use the <div> tag, not <script>alert(1)</script>.")
    assert html == ("<p>Use the &lt;div&gt; tag, not &lt;script&gt;alert(1)&lt;/script&gt;.</p>\n")


def test_remote_images_load_only_when_opted_in():
    text = "![chart](https://example.com/chart.png) ![dot](data:image/png;base64,iVBORw0KGgo=)"
    off = safe_display.markdown_html(text)
    assert "https://example.com/chart.png" not in off
    assert "[image: chart]" in off
    assert '<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">' in off
    on = safe_display.markdown_html(text, remote_images=True)
    assert '<img src="https://example.com/chart.png" alt="chart">' in on
    html = finalize(
        '<img src="https://example.com/x.png" onerror="y()">', "html", remote_images=True
    )
    assert html.bundle["text/html"] == '<img src="https://example.com/x.png">'
    assert finalize('<img src="https://example.com/x.png">', "html").bundle["text/html"] == "<img>"
    # Opting in admits http(s) images only, never other schemes or handlers.
    for payload in PAYLOADS:
        assert_safe(finalize(payload, "markdown", remote_images=True).bundle, remote_images=True)


def test_active_urls_are_dropped():
    for text in PAYLOADS:
        html = finalize(text, "html").bundle["text/html"]
        assert not re.search(r"(href|src)=\"\s*(javascript|vbscript|data:text)", html, re.I), html


# --- whatever the model writes ----------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        *PAYLOADS,
        "<",
        ">",
        '"',
        "'",
        "`",
        "```",
        "$",
        "$$",
        "*",
        "[",
        "](",
        ")",
        "!",
        "\n",
        "<img",
        " src=",
        " onerror=",
        "javascript:",
        "<a href=",
        "<svg",
        "&",
        "&#x6A;avascript:",
        "<!--",
        "-->",
        "<![CDATA[",
        "|",
        "\\",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=25))
def test_no_combination_of_pieces_gets_markup_through(pieces):
    text = "".join(pieces)
    for fmt in ("markdown", "code", "html"):
        assert_safe(streaming_bundle(text, fmt))
        assert_safe(finalize(text, fmt).bundle)


# --- the real kernel: IOPub messages of %%localmind --------------------------------------------


def test_iopub_bundles_of_every_format_are_safe(kernel, ollama_server):
    from tests.servers.ollama_server import split_words

    ollama_server.reply_pieces = split_words(HOSTILE)
    ollama_server.token_delay = 0.004
    for fmt in FORMATS:
        messages = kernel.run(f"%%localmind -f {fmt} --no-history\nanswer")
        shown = [m for m in messages if m["msg_type"] in {"display_data", "update_display_data"}]
        updates = [m for m in shown if m["msg_type"] == "update_display_data"]
        assert len(updates) >= 3, f"{fmt}: the answer did not stream ({len(updates)} updates)"
        for message in shown:
            assert_safe(message["content"]["data"])
        assert not [m for m in messages if m["msg_type"] == "error"]
    # The Markdown answer renders its safe part.
    check = kernel.run("%%localmind -f markdown --no-history --no-stats\nagain")
    final = [m for m in check if m["msg_type"] == "update_display_data"][-1]["content"]["data"]
    assert "<em>emphasis</em>" in final["text/html"] and "<table>" in final["text/html"]
    assert final["text/plain"] == HOSTILE


def test_the_remote_images_key_reaches_the_notebook(isolated_home: Path, ollama_server):
    from tests.test_magic_kernel import Kernel

    image = "![chart](https://example.com/chart.png)"
    ollama_server.reply_pieces = [image]
    shown = {}
    for remote_images in (False, True):
        (isolated_home / "config.yaml").write_text(
            textwrap.dedent(
                f"""
                default_model: ollama:smollm:135m
                display: {{remote_images: {str(remote_images).lower()}}}
                backends:
                  ollama:
                    settings: {{base_url: "{ollama_server.url}"}}
                """
            )
        )
        k = Kernel(isolated_home)
        try:
            k.run("%load_ext localmind_jupyter")
            messages = k.run("%%localmind --no-stats\nplot")
        finally:
            k.stop()
        final = [m for m in messages if m["msg_type"] == "update_display_data"][-1]
        shown[remote_images] = final["content"]["data"]["text/html"]
    assert shown[False] == '<p><span title="remote image not loaded">[image: chart]</span></p>\n'
    assert shown[True] == '<p><img src="https://example.com/chart.png" alt="chart"></p>\n'


# --- widgets: what servers say about their models is untrusted too ------------------------------


def test_widgets_escape_what_a_server_says_about_its_models(isolated_home: Path):
    from ipywidgets.widgets import widget as widget_module

    from localmind_jupyter.session import reset_session
    from localmind_jupyter.widgets import ModelCatalog
    from tests.servers.ollama_server import FakeModel, OllamaTestServer

    hostile = FakeModel("evil:1b", family=PAYLOADS[0], parameter_size="<script>alert(1)</script>")
    with OllamaTestServer(models=[hostile]) as server:
        (isolated_home / "config.yaml").write_text(
            f'backends:\n  ollama:\n    settings: {{base_url: "{server.url}"}}\n'
        )
        reset_session()
        try:
            catalog = ModelCatalog()
            assert catalog.wait(10)
            html = catalog._rows[("ollama", "evil:1b")].html.value
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
            assert not audit_html(re.sub(r' style="[^"]*"', "", html))
        finally:
            reset_session()
            for instance in list(widget_module._instances.values()):
                instance.close()


# --- the cost of sanitizing while streaming ------------------------------------------------------


def test_slow_renders_are_spaced_out(capsys):
    """A long structured answer takes a while to sanitize: renders then come at most a fifth
    of the time, instead of as often as the rate limit allows."""
    import time
    from types import SimpleNamespace

    from IPython.testing import globalipapp

    from localmind_jupyter.magics.render import NotebookView

    globalipapp.start_ipython()
    section = "## Part\n\nSome *text* with `code` and a [link](https://x.org).\n\n- a\n- b\n\n"
    stream = SimpleNamespace(text=section * 150)
    render = min(_timed(lambda: streaming_bundle(stream.text, "markdown")) for _ in range(3))
    view = NotebookView("markdown", max_rate=1000)
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        view.on_piece("x", stream)
    elapsed = time.monotonic() - start
    # Unspaced, renders would follow each other: about elapsed / render of them. Spaced,
    # each waits four times its own cost; the bound allows half the time for rendering,
    # since a render inside the view may run faster than the fastest of three cold ones.
    assert view.updates <= elapsed / (2 * render) + 1, (view.updates, render)
    capsys.readouterr()


def _timed(action) -> float:
    import time

    start = time.perf_counter()
    action()
    return time.perf_counter() - start
