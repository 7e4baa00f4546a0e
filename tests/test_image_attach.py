"""Attaching images where ``{placeholders}`` stand, and the thumbnails of what was sent.

``Attachments`` is ``interpolate``'s ``attach`` callback: image values become ``[image N]``
markers, each image once; the thumbnail view is HTML the sanitizer keeps as it is, with
nothing a label could inject, and metadata without bytes.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest

from localmind_jupyter import safe_display
from localmind_jupyter.core._attach import Attachments
from localmind_jupyter.core.images import ImageError, to_image
from localmind_jupyter.core.interpolation import interpolate

PIL = pytest.importorskip("PIL.Image")


def fill(template: str, namespace: dict) -> tuple[str, Attachments]:
    attachments = Attachments()
    return interpolate(template, namespace, attach=attachments.attach).text, attachments


def png_bytes(size: tuple[int, int], colour: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    PIL.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_values_become_markers_and_other_values_text():
    namespace = {"pic": PIL.new("RGB", (30, 20)), "n": 3, "raw": png_bytes((5, 4))}
    text, attachments = fill("{n} pictures: {pic}, {raw}, {pic}", namespace)
    assert text == "3 pictures: [image 1], [image 2], [image 1]"
    assert [(i.label, i.width, i.height) for i in attachments.images] == [
        ("pic", 30, 20),
        ("raw", 5, 4),
    ]


def test_the_same_picture_under_two_names_is_one_image():
    data = png_bytes((8, 8))
    text, attachments = fill("{a} {b} {Out[2]}", {"a": data, "b": bytes(data), "Out": {2: data}})
    assert text == "[image 1] [image 1] [image 1]"
    assert len(attachments.images) == 1


def test_out_of_a_plot_cell_is_its_figure():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(2, 1), dpi=50)
    lines = figure.add_subplot().plot([0, 1], [1, 0])
    try:
        text, attachments = fill("Explain {Out[4]}", {"Out": {4: lines}})
    finally:
        plt.close(figure)
    assert text == "Explain [image 1]"
    [image] = attachments.images
    assert image.label == "Out[4]" and image.format == "png" and 0 < image.width <= 100


def test_a_bad_image_raises_its_clear_message(tmp_path: Path):
    svg = tmp_path / "chart.svg"
    svg.write_text("<svg/>")
    with pytest.raises(ImageError, match="SVG is not supported"):
        fill("Describe {p}", {"p": svg})
    with pytest.raises(ImageError, match="cut is damaged or truncated"):
        fill("Describe {cut}", {"cut": png_bytes((40, 40))[:60]})


def test_arrays_that_are_not_pictures_stay_text():
    """A float or 7-channel array in a prompt is data to read, not a picture (``--image``
    on one says why it is not an image)."""
    np = pytest.importorskip("numpy")
    namespace = {"a": np.zeros((2, 2, 7), dtype=np.uint8), "f": np.array([[0.5, 1.0]])}
    text, attachments = fill("{a} {f}", namespace)
    assert text == f"{namespace['a']} {namespace['f']}" and not attachments.images


def test_an_ipython_svg_is_refused_not_stringified():
    from IPython.display import SVG

    with pytest.raises(ImageError, match="SVG is not supported"):
        fill("Describe {s}", {"s": SVG('<svg xmlns="http://www.w3.org/2000/svg"/>')})


# --- the view ---------------------------------------------------------------------------------
from localmind_jupyter.magics.image_view import (  # noqa: E402
    THUMBNAIL_EDGE,
    image_line,
    images_bundle,
    images_html,
    images_metadata,
)


def test_terminal_line_names_label_size_format_and_hash():
    image = to_image(png_bytes((640, 480)), "fig")
    assert image_line(1, image) == f"[image 1: fig, 640×480 PNG, sha256 {image.sha256[:8]}]"


def test_thumbnail_is_a_small_png_of_the_right_shape_and_passes_the_sanitizer():
    images = [to_image(png_bytes((640, 480)), "fig"), to_image(png_bytes((50, 300)), "tall")]
    html = images_html(images)
    assert safe_display.clean_html(html) == html, "the markup is what the sanitizer keeps"
    found = re.findall(r'src="data:image/png;base64,([^"]+)" width="(\d+)" height="(\d+)"', html)
    assert [(int(w), int(h)) for _d, w, h in found] == [(THUMBNAIL_EDGE, 120), (27, 160)]
    for data, width, height in found:
        assert PIL.open(io.BytesIO(base64.b64decode(data))).size == (int(width), int(height))
    assert 'alt="fig"' in html and 'alt="tall"' in html
    assert "[image 1] fig (640×480 PNG)" in html


def test_a_label_cannot_inject_markup():
    image = to_image(png_bytes((4, 4)), '"><script>alert(1)</script><img src=x onerror=alert(2)>')
    html = images_html([image])
    from html.parser import HTMLParser

    seen: list[tuple[str, list[str]]] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:
            seen.append((tag, [name for name, _v in attrs]))

    Tags().feed(html)
    assert seen == [
        ("p", []),
        ("img", ["src", "width", "height", "alt", "title"]),
        ("p", []),
        ("sub", []),
    ]


def test_metadata_has_sizes_and_hashes_never_bytes():
    image = to_image(png_bytes((64, 48)), "fig")
    [meta] = images_metadata([image])
    assert meta == {
        "label": "fig",
        "width": 64,
        "height": 48,
        "format": "png",
        "bytes": len(image.data),
        "sha256": image.sha256,
    }
    bundle = images_bundle([image])
    assert bundle["text/plain"] == image_line(1, image)


def test_a_path_is_labelled_by_its_name_never_its_folders(tmp_path: Path):
    path = tmp_path / "chart.png"
    path.write_bytes(png_bytes((6, 4)))
    text, attachments = fill("See {p}", {"p": path})
    assert text == "See [image 1]"
    [image] = attachments.images
    assert image.label == "p (chart.png)" and str(tmp_path) not in str(image.metadata())
    assert image.prepared().width == 6, "a relabelled image still prepares"
