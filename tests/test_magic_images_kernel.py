"""Images from the notebook into a prompt, in a real kernel, against the Ollama test server.

A matplotlib figure made in one cell reaches the server from ``{fig}`` in the next: its
request carries one base64 PNG of the figure's pixel size (capped by the backend's limit),
and the vision model's answer (computed from the pixels it received) names the colour.
The cell shows a thumbnail of what it sent; the output's metadata has the image's size
and hash, never its bytes. A text-only model and an SVG are refused before sending.
"""

from __future__ import annotations

import base64
import io
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_magic_kernel import Kernel, answer_messages, of_type

pytest.importorskip("jupyter_client")
pytest.importorskip("matplotlib")
PIL = pytest.importorskip("PIL.Image")

VISION = "ollama:llava:7b"
TEXT_ONLY = "ollama:smollm:135m"


@pytest.fixture
def vision_server() -> Iterator:
    from tests.servers.ollama_server import OllamaTestServer, default_models, vision_model

    with OllamaTestServer(models=[*default_models(), vision_model("llava:7b")]) as srv:
        yield srv


@pytest.fixture
def kernel(isolated_home: Path, vision_server, tmp_path: Path) -> Iterator[Kernel]:
    """A kernel whose default model sees, working in a temporary folder (for --image)."""
    (isolated_home / "config.yaml").write_text(
        textwrap.dedent(
            f"""
            default_model: {VISION}
            backends:
              ollama:
                settings: {{base_url: "{vision_server.url}"}}
            """
        )
    )
    k = Kernel(isolated_home)
    try:
        k.run("%load_ext localmind_jupyter")
        out = k.run(f"import os; os.chdir({str(tmp_path)!r})")
        assert not of_type(out, "error")
        yield k
    finally:
        k.stop()


def chats(server) -> list[dict]:
    return [body for _m, path, body in server.requests if path == "/api/chat"]


def decoded(b64: str) -> PIL.Image:
    image = PIL.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def printed(messages: list[dict]) -> str:
    text = "".join(m["content"].get("text", "") for m in of_type(messages, "stream"))
    return text + "".join("\n".join(m["content"]["traceback"]) for m in of_type(messages, "error"))


def notes(messages: list[dict]) -> str:
    """The text of every display (notes, errors, thumbnails, the answer)."""
    return "\n".join(
        m["content"]["data"].get("text/plain", "")
        for m in of_type(messages, "display_data", "update_display_data")
    )


def thumbnails(messages: list[dict]) -> list[dict]:
    """The displays holding the thumbnails of what was sent."""
    return [
        m["content"]
        for m in of_type(messages, "display_data")
        if 'src="data:image/png;base64,' in m["content"]["data"].get("text/html", "")
    ]


def final_answer(messages: list[dict]) -> dict:
    return answer_messages(messages)[-1]["content"]


def run_ok(kernel: Kernel, code: str) -> list[dict]:
    out = kernel.run(code)
    assert not of_type(out, "error"), printed(out)
    return out


FIGURE = """
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(40, 10), dpi=100)
ax.bar(range(5), [3, 5, 2, 4, 6], color="tab:red", width=0.9)
"""


def test_a_figure_reaches_the_vision_model_from_a_placeholder(kernel, vision_server):
    run_ok(kernel, FIGURE)
    size = run_ok(
        kernel,
        "from localmind_jupyter.core.images import to_image\n"
        "_i = to_image(fig, 'fig'); print(_i.width, _i.height, _i.sha256)",
    )
    width, height, sha = printed(size).split()
    width, height = int(width), int(height)
    assert width > 2048, "the figure should be larger than Ollama's 2048 px limit"

    messages = run_ok(kernel, "%%localmind\nWhat colour are the bars in {fig}?")
    body = chats(vision_server)[-1]
    user = body["messages"][-1]
    assert user["content"] == "What colour are the bars in [image 1]?"
    assert len(user["images"]) == 1, "one figure, one image"
    image = decoded(user["images"][0])
    assert image.format == "PNG"
    assert image.size[0] == 2048, "downscaled to the backend's long-edge limit"
    assert abs(image.size[1] - height * 2048 / width) <= 1
    answer = final_answer(messages)["data"]["text/plain"]
    assert "red" in answer and "#d62728" in answer, answer

    # The thumbnail of what was sent, above the answer; its metadata: sizes and hashes.
    shown = thumbnails(messages)
    assert len(shown) == 1
    html = shown[0]["data"]["text/html"]
    match = re.search(
        r'<img src="data:image/png;base64,([^"]+)" width="(\d+)" height="(\d+)"', html
    )
    assert match, html[:300]
    assert max(int(match.group(2)), int(match.group(3))) == 160
    assert decoded(match.group(1)).size == (int(match.group(2)), int(match.group(3)))
    assert 'alt="fig"' in html
    assert shown[0]["data"]["text/plain"].startswith(
        f"[image 1: fig, {width}×{height} PNG, sha256 {sha[:8]}]"
    )
    outputs = of_type(messages, "display_data", "update_display_data")
    assert outputs.index(next(m for m in outputs if m["content"] is shown[0])) < outputs.index(
        answer_messages(messages)[0]
    ), "the thumbnail is above the answer"
    meta = final_answer(messages)["metadata"]["localmind"]
    assert meta["images"] == [
        {"label": "fig", "width": width, "height": height, "format": "png",
         "bytes": meta["images"][0]["bytes"], "sha256": sha}
    ]  # fmt: skip
    stored = json.dumps(final_answer(messages)["metadata"])
    assert user["images"][0][:200] not in stored and len(stored) < 4000, "no bytes in metadata"
    assert "images" not in meta["parameters"]

    # History: the next cell of the conversation sends the earlier image again.
    run_ok(kernel, "%%localmind\nAnd how many bars are there?")
    again = chats(vision_server)[-1]["messages"]
    assert again[0]["content"] == "What colour are the bars in [image 1]?"
    assert again[0]["images"] == user["images"]
    assert "images" not in again[-1] or not again[-1]["images"]


def test_image_option_reads_a_file_relative_to_the_working_folder(kernel, vision_server, tmp_path):
    PIL.new("RGB", (64, 48), (0, 0, 255)).save(tmp_path / "chart.png")
    messages = run_ok(kernel, "%%localmind --image chart.png\nWhat colour is it?")
    user = chats(vision_server)[-1]["messages"][-1]
    assert user["content"] == "What colour is it?"
    assert [decoded(b).size for b in user["images"]] == [(64, 48)]
    assert "pure blue" in final_answer(messages)["data"]["text/plain"]
    assert final_answer(messages)["metadata"]["localmind"]["images"][0]["label"] == "chart.png"


def test_out_of_a_plot_cell_is_its_figure(kernel, vision_server):
    out = run_ok(
        kernel,
        "import matplotlib.pyplot as plt\nplt.plot([0, 1], [0, 1], color='tab:green', lw=20)",
    )
    count = next(m["content"]["execution_count"] for m in of_type(out, "execute_input"))
    messages = run_ok(
        kernel, f"%%localmind --no-history\nWhat colour is the line in {{Out[{count}]}}?"
    )
    user = chats(vision_server)[-1]["messages"][-1]
    assert user["content"] == "What colour is the line in [image 1]?"
    assert len(user["images"]) == 1
    assert "green" in final_answer(messages)["data"]["text/plain"]
    meta = final_answer(messages)["metadata"]["localmind"]
    assert meta["images"][0]["label"] == f"Out[{count}]"


def test_a_text_only_model_is_refused_before_sending(kernel, vision_server):
    run_ok(kernel, FIGURE)
    before = len(chats(vision_server))
    messages = run_ok(kernel, f"%%localmind {TEXT_ONLY}\nDescribe {{fig}}")
    assert len(chats(vision_server)) == before, "nothing was sent"
    said = notes(messages)
    assert "cannot read images" in said and "vision" in said, said
    assert not thumbnails(messages), "nothing was sent, so no thumbnail"
    # The prompt is kept: the same cell, with a model that sees, is answered.
    messages = run_ok(kernel, f"%%localmind {VISION}\nDescribe {{fig}}")
    assert len(chats(vision_server)) == before + 1
    assert "red" in final_answer(messages)["data"]["text/plain"]


def test_an_svg_gets_its_clear_message_and_nothing_is_sent(kernel, vision_server, tmp_path):
    (tmp_path / "chart.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    before = len(chats(vision_server))
    for cell in (
        "%%localmind --image chart.svg\nDescribe it",
        "from pathlib import Path\n_p = Path('chart.svg')\nget_ipython().run_cell_magic("
        "'localmind', '', 'Describe {_p}')",
    ):
        said = notes(run_ok(kernel, cell))
        assert "SVG is not supported" in said and "PNG" in said, said
    assert len(chats(vision_server)) == before


def test_no_interpolate_leaves_the_placeholder_as_text(kernel, vision_server):
    run_ok(kernel, FIGURE)
    run_ok(kernel, "%%localmind --no-interpolate --no-history\nDescribe {fig}")
    user = chats(vision_server)[-1]["messages"][-1]
    assert user["content"] == "Describe {fig}" and not user.get("images")


def test_compare_shows_one_thumbnail_above_the_columns(kernel, vision_server):
    from tests.test_magic_compare_kernel import view_messages

    run_ok(kernel, FIGURE)
    messages = run_ok(kernel, f"%%localmind {VISION} {TEXT_ONLY} --no-history\nColour of {{fig}}?")
    shown = thumbnails(messages)
    assert len(shown) == 1, "the same images go to every model: one thumbnail"
    view = view_messages(messages)
    outputs = of_type(messages, "display_data", "update_display_data")
    assert outputs.index(next(m for m in outputs if m["content"] is shown[0])) < outputs.index(
        view[0]
    )
    final = view[-1]["content"]
    plain = final["data"]["text/plain"]
    assert "red" in plain and "cannot read images" in plain
    meta = final["metadata"]["localmind"]
    assert [m["label"] for m in meta["images"]] == ["fig"]
    assert all("images" not in m["parameters"] for m in meta["models"])
    assert [b["model"] for b in chats(vision_server)] == ["llava:7b"]
