"""Model output is untrusted: this turns it into HTML that can run nothing and fetch nothing.

JupyterLab renders the outputs of a live session as *trusted*: raw HTML in an answer
(or in a web page pasted into the prompt) would run scripts, event handlers and
iframes, and an image URL would be fetched with no click. So every front end shows
model-written text only through this module:

- Markdown is parsed by markdown-it-py with raw HTML off (``<tag>`` stays visible
  text), tables, strikethrough and ``$``/``$$``/``\\begin{..}`` math on, then the HTML
  goes through nh3 (the Ammonia sanitizer) with a small allow-list of tags and
  attributes. Math is emitted as escaped ``$…$`` text for MathJax, which JupyterLab
  runs over HTML outputs with its safe-URL filter.
- Links keep only ``http``, ``https`` and ``mailto`` targets; ``javascript:``,
  ``vbscript:``, ``data:``, relative and every other URL is dropped.
- Images load only from ``data:image/...`` URLs, or from http(s) when the user opts
  in (config ``display.remote_images: true``); otherwise they show as their alt text.

In a terminal, ``terminal_text`` drops the control characters an escape sequence needs.

No IPython here, and markdown-it-py and nh3 are imported on first use only, so
``%load_ext`` stays fast.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import nh3
    from markdown_it import MarkdownIt
    from markdown_it.renderer import RendererHTML
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict

#: What an answer may contain after cleaning: text structure, no forms, media or styles.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
        "del", "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3",
        "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q",
        "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody",
        "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "*": {"title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "code": {"class"},  # language-xxx only, see _keep_attribute
    "ol": {"start"},
    "td": {"colspan", "rowspan", "align", "style"},  # style: text-align only
    "th": {"colspan", "rowspan", "align", "style", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
}
LINK_SCHEMES = ("http", "https", "mailto")
IMAGE_DATA = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml)[;,]", re.IGNORECASE)
_REMOTE = re.compile(r"https?://", re.IGNORECASE)
_LANGUAGE_CLASS = re.compile(r"language-[\w+#.-]{1,40}")
_CLEAN_CONTENT = frozenset({"script", "style", "template", "noscript", "iframe", "textarea"})


#: C0 and C1 control characters but tab and newline: escape sequences (ESC, CSI, OSC) in an
#: answer could retitle the terminal, move the cursor over earlier lines or hide text.
_TERMINAL_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_text(text: str) -> str:
    """Model text for a terminal: control characters dropped, so it can only print."""
    return _TERMINAL_CONTROLS.sub("", text)


def escape(text: object) -> str:
    """Plain text for an HTML context (labels, model names, error messages)."""
    return html.escape(str(text), quote=True)


def clean_html(markup: str, *, remote_images: bool = False) -> str:
    """Untrusted HTML (``-f html``, or the Markdown renderer's) reduced to the allow-list."""
    return _cleaner(remote_images).clean(markup)


def markdown_html(text: str, *, remote_images: bool = False) -> str:
    """A Markdown answer as safe HTML (also for a partial answer while it streams)."""
    if not text:
        return ""
    return clean_html(_markdown(remote_images).render(text), remote_images=remote_images)


def code_html(code: str, language: str = "") -> str:
    """A code block: escaped, never interpreted."""
    lang = language if _LANGUAGE_CLASS.fullmatch(f"language-{language}") else ""
    attr = f' class="language-{escape(lang)}"' if lang else ""
    return f"<pre><code{attr}>{escape(code)}</code></pre>"


def _keep_attribute(remote_images: bool, tag: str, name: str, value: str) -> str | None:
    """nh3's per-attribute hook: the URL and class rules the allow-lists cannot express."""
    if tag == "img" and name == "src":
        value = value.strip()
        if IMAGE_DATA.match(value) or (remote_images and _REMOTE.match(value)):
            return value
        return None
    if tag == "a" and name == "href":
        scheme = value.strip().split(":", 1)[0].lower() if ":" in value else ""
        return value if scheme in LINK_SCHEMES else None
    if name == "class":
        kept = [c for c in value.split() if tag == "code" and _LANGUAGE_CLASS.fullmatch(c)]
        return " ".join(kept) or None
    return value


@lru_cache(maxsize=2)
def _cleaner(remote_images: bool) -> nh3.Cleaner:
    import nh3

    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_CLEAN_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=lambda tag, name, value: _keep_attribute(remote_images, tag, name, value),
        url_schemes={*LINK_SCHEMES, "data"},
        url_relative="deny",
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


@lru_cache(maxsize=2)
def _markdown(remote_images: bool) -> MarkdownIt:
    """markdown-it-py as CommonMark + tables, strikethrough and math; raw HTML off."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.amsmath import amsmath_plugin
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # Math stays TeX text between its delimiters, escaped: MathJax typesets it in the page.
    md.use(dollarmath_plugin, allow_labels=False, renderer=_math_text)
    md.use(amsmath_plugin, renderer=escape)

    renderer = cast("RendererHTML", md.renderer)  # the "commonmark" preset's renderer
    default_image = renderer.rules.get("image")

    def image(
        _self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        if IMAGE_DATA.match(src) or (remote_images and _REMOTE.match(src)):
            return default_image(tokens, idx, options, env) if default_image else ""
        alt = renderer.renderInlineAsText(token.children or [], options, env)
        return f'<span title="remote image not loaded">[image: {escape(alt)}]</span>'

    md.add_render_rule("image", image)
    return md


def _math_text(content: str, options: dict[str, Any]) -> str:
    delimiter = "$$" if options.get("display_mode") else "$"
    return escape(f"{delimiter}{content}{delimiter}")
