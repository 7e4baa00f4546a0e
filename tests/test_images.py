"""Reading every accepted image value once, preparing it to a backend's limits, and the clear
message each bad input gets. Real pillow, numpy and matplotlib throughout.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import ExifTags, Image

from localmind_jupyter.core.images import (
    ImageError,
    ImageLimits,
    PreparedImage,
    is_image_value,
    to_image,
)
from localmind_jupyter.errors import OptionError

SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10"/></svg>'
)


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def opened(prepared: PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.data))
    image.load()
    return image


def noise(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` (its pixels are never there)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))


# --- what counts as an image ------------------------------------------------------------------


def test_is_image_value_knows_the_accepted_kinds_and_nothing_else(tmp_path):
    fig, ax = plt.subplots()
    lines = ax.plot([1, 2, 3])
    plt.close(fig)
    yes = [
        Image.new("RGB", (2, 2)),
        fig,
        lines,
        lines[0],
        ax,
        np.zeros((2, 2), np.uint8),
        np.zeros((2, 2, 3), np.uint8),
        np.zeros((2, 2, 4), np.uint8),
        encoded(Image.new("RGB", (2, 2))),
        bytearray(encoded(Image.new("RGB", (2, 2)), "JPEG")),
        encoded(Image.new("RGB", (2, 2)), "GIF"),
        encoded(Image.new("RGB", (2, 2)), "WEBP"),
        tmp_path / "any.txt",
        to_image(encoded(Image.new("RGB", (2, 2))), "x"),
    ]
    no = [
        "chart.png",
        b"just text",
        b"",
        SVG,
        42,
        [],
        [1, 2],
        np.zeros((2, 2), np.float64),
        np.zeros((2, 2, 2), np.uint8),
        np.zeros((1, 2, 2, 3), np.uint8),
        {"a": 1},
    ]
    assert [is_image_value(v) for v in yes] == [True] * len(yes)
    assert [is_image_value(v) for v in no] == [False] * len(no)


# --- sources ----------------------------------------------------------------------------------


def test_a_pil_image_of_any_mode_becomes_a_png_source():
    for mode, size in [("RGB", (30, 20)), ("RGBA", (5, 7)), ("L", (9, 9)), ("P", (4, 3))]:
        image = to_image(Image.new(mode, size), "img")
        assert (image.format, image.width, image.height, image.label) == ("png", *size, "img")
        assert image.data.startswith(b"\x89PNG")
    cmyk = to_image(Image.new("CMYK", (3, 3)), "print")  # not storable as PNG: made RGB
    assert Image.open(io.BytesIO(cmyk.data)).mode == "RGB"


def test_a_figure_is_drawn_at_its_dpi_and_works_after_plt_close():
    drawn = []
    for dpi in (50, 100):
        fig, ax = plt.subplots(figsize=(4, 3), dpi=dpi)
        ax.plot([0, 1], [1, 0])
        plt.close(fig)  # what the inline backend does after showing it
        drawn.append(to_image(fig, "fig"))
    small, large = drawn
    assert small.format == "png" and small.label == "fig"
    assert 150 <= small.width <= 210 and 110 <= small.height <= 160  # 4×3 in at 50 dpi, tight
    assert abs(large.width - 2 * small.width) <= 4 and abs(large.height - 2 * small.height) <= 4


def test_artists_and_lists_of_artists_mean_their_figure():
    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    lines = ax.plot([1, 3, 2])  # what `plt.plot(...)` leaves as Out[n]
    whole = to_image(fig, "fig")
    assert to_image(lines, "Out[3]").sha256 == whole.sha256
    assert to_image(ax, "ax").sha256 == whole.sha256
    sub = fig.subfigures(1, 1)
    assert to_image(sub, "sub").sha256 == to_image(fig, "fig").sha256
    plt.close(fig)
    from matplotlib.lines import Line2D

    with pytest.raises(ImageError, match=r"lonely \(matplotlib Line2D\) is on no figure; pass"):
        to_image(Line2D([0], [0]), "lonely")


def test_arrays_gray_rgb_and_rgba():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = noise(5, 6)
    rgba = noise(2, 3, 4)
    for array, mode in [(gray, "L"), (rgb, "RGB"), (rgba, "RGBA")]:
        image = to_image(array, "arr")
        assert (image.width, image.height) == (array.shape[1], array.shape[0])
        decoded = Image.open(io.BytesIO(image.data))
        assert decoded.mode == mode
        assert np.array_equal(np.asarray(decoded), array)
    strided = noise(8, 8)[::2, ::2]  # a view, not contiguous
    assert to_image(strided, "view").width == 4


def test_bytes_paths_and_ipython_images_keep_the_file_as_it_is(tmp_path):
    from IPython.display import Image as IPyImage

    jpeg = encoded(Image.fromarray(noise(10, 20)), "JPEG")
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg)
    for value, label in [
        (jpeg, "data"),
        (path, "photo.jpg"),
        (str(path), "photo.jpg"),
        (IPyImage(data=jpeg), "shown"),
        (IPyImage(filename=str(path)), "shown"),
    ]:
        image = to_image(value, label)
        assert (image.data, image.format, image.width, image.height) == (jpeg, "jpeg", 20, 10)
        assert image.label == label
    bmp = tmp_path / "old.bmp"
    Image.new("RGB", (3, 2), (1, 2, 3)).save(bmp)
    assert to_image(bmp, "old.bmp").format == "png"  # other formats Pillow reads: as PNG


def test_an_image_input_passes_through_and_metadata_holds_no_bytes():
    image = to_image(encoded(Image.new("RGB", (4, 2))), "x")
    assert to_image(image, "y") is image
    meta = image.metadata()
    assert meta == {
        "label": "x",
        "width": 4,
        "height": 2,
        "format": "png",
        "bytes": len(image.data),
        "sha256": image.sha256,
    }
    assert "data" not in repr(image) and str(image.data) not in repr(image)
    prepared = image.prepared()
    assert set(prepared.metadata()) == {"width", "height", "format", "bytes", "sha256"}


# --- preparing --------------------------------------------------------------------------------


def test_a_large_drawing_is_downscaled_to_the_long_edge_and_stays_png():
    drawing = Image.new("RGB", (4000, 1000), "white")
    drawing.paste((255, 0, 0), (0, 0, 2000, 1000))
    prepared = to_image(drawing, "wide").prepared(ImageLimits(max_edge=1000))
    assert (prepared.mime, prepared.width, prepared.height) == ("image/png", 1000, 250)
    image = opened(prepared)
    assert image.format == "PNG" and image.getpixel((100, 100)) == (255, 0, 0)
    assert image.getpixel((900, 100)) == (255, 255, 255)
    assert prepared.base64() and prepared.data_url().startswith("data:image/png;base64,iVBOR")
    import base64
    import hashlib

    assert base64.b64decode(prepared.base64()) == prepared.data
    assert prepared.sha256 == hashlib.sha256(prepared.data).hexdigest()


def test_a_small_image_keeps_its_size():
    prepared = to_image(Image.new("RGB", (300, 200)), "s").prepared(ImageLimits(max_edge=2048))
    assert (prepared.width, prepared.height) == (300, 200)


def test_photos_become_jpeg_and_plots_png():
    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    ax.plot(np.sin(np.linspace(0, 6, 50)))
    plt.close(fig)
    assert to_image(fig, "plot").prepared().mime == "image/png"
    big, ax = plt.subplots(figsize=(10, 6), dpi=150)
    for k in range(1, 5):
        ax.plot(np.sin(np.linspace(0, 6 * k, 400)), label=str(k))
    ax.legend()
    plt.close(big)
    # Downscaling blends a plot's few colours into many: it is still a drawing, still PNG.
    shrunk = to_image(big, "big").prepared(ImageLimits(max_edge=800))
    assert (shrunk.mime, shrunk.width) == ("image/png", 800)
    assert to_image(noise(300, 400), "photo").prepared().mime == "image/jpeg"  # many colours
    jpeg = encoded(Image.new("RGB", (50, 40), (9, 9, 9)), "JPEG")
    assert to_image(jpeg, "jpeg").prepared().mime == "image/jpeg"  # a JPEG stays a photo
    png_only = ImageLimits(formats=("png",))
    assert to_image(noise(30, 40), "photo").prepared(png_only).mime == "image/png"


def test_exif_and_gps_are_stripped_and_the_orientation_applied():
    photo = Image.fromarray(noise(40, 60))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretPhone"
    exif[ExifTags.Base.Orientation] = 6  # shot sideways: turn 90° to view
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (51.0, 30.0, 12.5),
    }
    data = encoded(photo, "JPEG", exif=exif)
    source = to_image(data, "holiday.jpg")
    assert b"SecretPhone" in source.data and Image.open(io.BytesIO(data)).getexif()
    prepared = source.prepared()
    assert prepared.mime == "image/jpeg"
    assert b"Exif" not in prepared.data and b"SecretPhone" not in prepared.data
    image = opened(prepared)
    assert not image.getexif() and "exif" not in image.info
    assert (prepared.width, prepared.height) == (40, 60)  # turned upright


def test_png_text_chunks_are_stripped():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "secret-author")
    data = encoded(Image.new("RGB", (10, 10), (1, 2, 3)), "PNG", pnginfo=info)
    prepared = to_image(data, "tagged.png").prepared()
    assert b"secret-author" not in prepared.data and opened(prepared).text == {}


def test_a_noisy_4000x3000_image_is_brought_under_the_byte_cap():
    source = to_image(noise(3000, 4000), "noise")
    limits = ImageLimits(max_edge=2048, max_bytes=150_000)
    prepared = source.prepared(limits)
    assert len(prepared.data) <= 150_000
    assert prepared.mime == "image/jpeg"
    assert max(prepared.width, prepared.height) < 2048  # shrank to fit
    assert abs(prepared.width / prepared.height - 4 / 3) < 0.01
    assert source.prepared(limits) is prepared  # prepared once per limits
    assert source.prepared(ImageLimits(max_edge=64)) is not prepared


def test_a_cap_no_size_can_meet_is_an_image_error():
    with pytest.raises(ImageError, match=r"noise cannot be made smaller than 1024 bytes"):
        to_image(noise(200, 200), "noise").prepared(ImageLimits(max_bytes=1024, formats=("png",)))


def test_an_animated_gif_sends_its_first_frame_as_png():
    frames = [Image.new("RGB", (20, 10), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    source = to_image(buffer.getvalue(), "anim.gif")
    assert source.format == "gif"
    prepared = source.prepared()
    assert prepared.mime == "image/png"
    assert opened(prepared).convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_rgba_stays_png_with_alpha_and_a_photo_is_flattened_on_white():
    drawing = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    drawing.paste((0, 128, 0, 255), (0, 0, 10, 20))
    prepared = to_image(drawing, "logo").prepared()
    image = opened(prepared)
    assert prepared.mime == "image/png" and image.mode == "RGBA"
    assert image.getpixel((15, 5))[3] == 0 and image.getpixel((5, 5)) == (0, 128, 0, 255)
    photo = noise(200, 200, 4)
    photo[:, 100:, 3] = 0  # the right half transparent
    flat = to_image(photo, "cutout").prepared()
    assert flat.mime == "image/jpeg"
    r, g, b = opened(flat).getpixel((180, 100))
    assert min(r, g, b) > 240  # white where it was transparent


# --- bad input: each says what is wrong with which value ---------------------------------------


def test_a_truncated_file_is_refused_with_its_label(tmp_path):
    data = encoded(Image.fromarray(noise(100, 100)), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"^cut.png is damaged or truncated and cannot be read"):
        to_image(path, "cut.png")
    with pytest.raises(ImageError, match=r"^image 1 is damaged or truncated"):
        to_image(data[: len(data) // 2], "image 1")


def test_a_text_file_named_png_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are my notes, not a picture\n")
    with pytest.raises(ImageError, match=r"^notes.png is not an image Pillow can read"):
        to_image(path, "notes.png")
    with pytest.raises(ImageError, match=r"^blob is not an image Pillow can read"):
        to_image(b"hello world", "blob")


def test_a_missing_path_and_a_folder(tmp_path):
    with pytest.raises(ImageError, match=r"^gone.png: no such file; check the path"):
        to_image(tmp_path / "gone.png", "gone.png")
    with pytest.raises(ImageError, match=r"^--image \(.*gone.png\): no such file"):
        to_image(str(tmp_path / "gone.png"), "--image")
    folder = tmp_path / "pics.png"
    folder.mkdir()
    with pytest.raises(ImageError, match=r"^pics.png is a folder, not an image file"):
        to_image(folder, "pics.png")


def test_svg_is_refused_as_bytes_and_as_a_path(tmp_path):
    hint = r"SVG is not supported: export it as PNG \(e\.g\. fig\.savefig\('x\.png'\)\)"
    with pytest.raises(ImageError, match=rf"^logo: {hint}"):
        to_image(SVG, "logo")
    path = tmp_path / "chart.svg"
    path.write_bytes(SVG)
    with pytest.raises(ImageError, match=rf"^chart.svg: {hint}"):
        to_image(path, "chart.svg")
    plain_svg = tmp_path / "drawing.png"  # an SVG whatever its name says
    plain_svg.write_bytes(SVG.split(b"\n", 1)[1])
    with pytest.raises(ImageError, match=rf"^drawing.png: {hint}"):
        to_image(plain_svg, "drawing.png")
    doctype = b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN">\n' + SVG.split(b"\n", 1)[1]
    with pytest.raises(ImageError, match=rf"^inkscape: {hint}"):
        to_image(doctype, "inkscape")


def test_wrong_array_shapes_and_dtypes():
    with pytest.raises(ImageError, match=r"^arr is an array of shape \(4, 5, 2\); an image is"):
        to_image(np.zeros((4, 5, 2), np.uint8), "arr")
    with pytest.raises(ImageError, match=r"shape \(1, 4, 5, 3\).*H×W×3 \(RGB\)"):
        to_image(np.zeros((1, 4, 5, 3), np.uint8), "batch")
    with pytest.raises(ImageError, match=r"^f is an array of float64, not uint8; convert with "):
        to_image(np.zeros((4, 5, 3)), "f")
    with pytest.raises(ImageError, match=re.escape("(arr*255).astype('uint8')")):
        to_image(np.zeros((4, 5), np.float32), "f")
    with pytest.raises(ImageError, match=r"int64, not uint8; scale it to 0..255"):
        to_image(np.zeros((4, 5), np.int64), "i")


def test_a_200_megapixel_image_is_refused_without_decoding_it(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(png_header_only(20_000, 10_000))  # 200 MP claimed, 100 bytes on disk
    with pytest.raises(ImageError, match=r"^scan.png is 200 megapixels, more than the 50-"):
        to_image(path, "scan.png")
    # Under Pillow's own bomb limit but over ours: the size is named exactly.
    with pytest.raises(ImageError, match=r"^big is 10000×6000 pixels \(60 megapixels\)"):
        to_image(png_header_only(10_000, 6_000), "big")
    with pytest.raises(ImageError, match=r"^huge is 8000×8000 pixels"):
        to_image(Image.new("1", (8000, 8000)), "huge")
    # A figure or an array that large is refused before it is drawn or copied.
    poster = plt.figure(figsize=(100, 100), dpi=100)
    plt.close(poster)
    with pytest.raises(ImageError, match=r"^poster is 10000×10000 pixels \(100 megapixels\)"):
        to_image(poster, "poster")
    wide = np.broadcast_to(np.uint8(0), (20_000, 10_000))  # a view: no 200 MB allocated
    with pytest.raises(ImageError, match=r"^wide is 10000×20000 pixels \(200 megapixels\)"):
        to_image(wide, "wide")


def test_empty_bytes_and_other_values():
    with pytest.raises(ImageError, match=r"^pic is empty \(0 bytes\), not an image"):
        to_image(b"", "pic")
    with pytest.raises(ImageError, match=r"^x is a dict, not an image; pass a PIL image"):
        to_image({"a": 1}, "x")
    assert issubclass(ImageError, OptionError)


def test_without_pillow_the_message_says_how_to_install_it():
    """Pillow blocked in a fresh interpreter, as if it were not installed."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys\n"
        "sys.modules['PIL'] = None\n"
        "from localmind_jupyter.core.images import ImageError, is_image_value, to_image\n"
        "assert is_image_value(b'\\x89PNG\\r\\n\\x1a\\n....')\n"
        "try:\n"
        "    to_image(b'\\x89PNG\\r\\n\\x1a\\n....', 'fig')\n"
        "except ImageError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == (
        "reading images needs pillow: pip install 'localmind-jupyter[vision]'"
    )
