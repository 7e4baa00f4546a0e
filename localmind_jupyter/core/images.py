"""Images as model input: every accepted value read and checked once, prepared once per limit.

Front ends and the Python API hand any image value (a PIL image, a matplotlib figure, a
numpy array, file bytes, a path) to ``to_image``; backends ask the result for
``prepared(limits)``: downscaled, re-encoded without metadata, under a byte cap. Pillow,
numpy and matplotlib are imported only here, on first use, never at ``%load_ext``:
``is_image_value`` looks at types by name only.
"""

from __future__ import annotations

import base64 as _b64
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "ImageError",
    "ImageInput",
    "ImageLimits",
    "PreparedImage",
    "is_image_value",
    "to_image",
]

#: Formats an ``ImageInput`` keeps as they came (anything else Pillow reads becomes PNG).
SOURCE_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp", "gif")
#: Larger images are refused before they are decoded (a 200-MP scan would take gigabytes).
MAX_PIXELS = 50_000_000
#: Larger files are refused before they are read.
MAX_FILE_BYTES = 100_000_000

#: One image prepared at a time: a batch's rows share one image and its cache.
_PREPARING = threading.Lock()

_SVG_HINT = "SVG is not supported: export it as PNG (e.g. fig.savefig('x.png'))"
_PILLOW_HINT = "reading images needs pillow: pip install 'localmind-jupyter[vision]'"


class ImageError(OptionError):
    """An image value LocalMind cannot read, or one too large to send; the message says why."""


@dataclass(frozen=True)
class ImageLimits:
    """What one backend takes: the long edge in pixels, the encoded size, the encodings."""

    max_edge: int = 2048
    max_bytes: int = 5_000_000
    #: Encodings preparing may pick from (PNG for drawings, JPEG for photos).
    formats: tuple[str, ...] = ("png", "jpeg")


@dataclass(frozen=True)
class PreparedImage:
    """The bytes a backend sends: downscaled, re-encoded (no metadata), under the byte cap."""

    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    sha256: str

    @property
    def format(self) -> str:
        return self.mime.split("/", 1)[1]

    def base64(self) -> str:
        return _b64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.base64()}"

    def metadata(self) -> dict[str, Any]:
        """Size and hash for logs and cell metadata: never the bytes."""
        return {
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "bytes": len(self.data),
            "sha256": self.sha256,
        }


@dataclass(frozen=True, eq=False)
class ImageInput:
    """One image as the user gave it, read and checked once (``to_image`` makes these)."""

    #: The encoded source: the file's own bytes, or PNG for figures, arrays, PIL images.
    data: bytes = field(repr=False)
    format: str
    width: int
    height: int
    #: Hex SHA-256 of ``data``: the same picture has the same hash wherever it came from.
    sha256: str
    #: What the user calls it: ``fig``, ``Out[3]``, ``chart.png``, ``image 1``.
    label: str
    _cache: dict[ImageLimits, PreparedImage] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def prepared(self, limits: ImageLimits | None = None) -> PreparedImage:
        """The image as a backend with these limits sends it, computed once per limits."""
        limits = limits or ImageLimits()
        with _PREPARING:
            done = self._cache.get(limits)
            if done is None:
                done = self._cache[limits] = _prepare_module().prepare(self, limits)
            return done

    def metadata(self) -> dict[str, Any]:
        """Label, size and hash for logs and cell metadata: never the bytes."""
        return {
            "label": self.label,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "bytes": len(self.data),
            "sha256": self.sha256,
        }


# --- recognising a value, without importing what it might be ----------------------------------


def _class_names(value: object) -> set[str]:
    return {f"{k.__module__}.{k.__qualname__}" for k in type(value).__mro__}


_PIL_IMAGE = "PIL.Image.Image"
_MPL_FIGURE = {"matplotlib.figure.Figure", "matplotlib.figure.SubFigure"}
_MPL_ARTIST = "matplotlib.artist.Artist"
_IPY_IMAGE = "IPython.core.display.Image"


def _sniff(data: bytes | bytearray | memoryview) -> str | None:
    """The format a file's first bytes name, for the four formats vision APIs take."""
    head = bytes(data[:12])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _is_array(value: object) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _is_artists(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_MPL_ARTIST in _class_names(v) for v in value)
    return _MPL_ARTIST in _class_names(value)


def is_image_value(value: object) -> bool:
    """Whether ``value`` is one of the image values a prompt attaches (cheap: no imports)."""
    if isinstance(value, ImageInput):
        return True
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _sniff(value) is not None
    if isinstance(value, Path):
        return True
    names = _class_names(value)
    if _PIL_IMAGE in names or names & _MPL_FIGURE or _IPY_IMAGE in names:
        return True
    if _is_array(value):
        shape: tuple[int, ...] = tuple(getattr(value, "shape", ()))
        return str(getattr(value, "dtype", "")) == "uint8" and (
            len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))
        )
    return _is_artists(value)


# --- reading each kind of value ---------------------------------------------------------------


def _prepare_module() -> Any:
    """``_image_prepare`` (Pillow with it), or the install command when pillow is missing."""
    try:
        from . import _image_prepare
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "PIL":
            raise ImageError(_PILLOW_HINT) from None
        raise
    return _image_prepare


def to_image(value: object, label: str) -> ImageInput:
    """Read and check ``value`` once; ``ImageError`` names ``label`` and what is wrong.

    A ``str`` is taken as a file path: only callers that know it is one pass it
    (``--image``, ``images=[...]``); prompts never turn text into paths.
    """
    if isinstance(value, ImageInput):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(value), label)
    if isinstance(value, (str, Path)):
        return _from_path(Path(value), label)
    names = _class_names(value)
    if _PIL_IMAGE in names:
        return _from_pil(value, label)
    if names & _MPL_FIGURE:
        return _from_figure(value, label)
    if _IPY_IMAGE in names:
        return _from_ipython(value, label)
    if _is_array(value):
        return _from_array(value, label)
    if _is_artists(value):
        return _from_figure(_figure_of(value, label), label)
    raise ImageError(
        f"{label} is a {type(value).__name__}, not an image; pass a PIL image, a matplotlib "
        "figure, a uint8 numpy array, PNG/JPEG/WebP/GIF bytes or a path to such a file"
    )


def _from_path(path: Path, label: str) -> ImageInput:
    shown = label if label == path.name else f"{label} ({path})"
    if path.suffix.lower() in (".svg", ".svgz"):
        raise ImageError(f"{shown}: {_SVG_HINT}")
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ImageError(f"{shown} is a folder, not an image file")
        if size > MAX_FILE_BYTES:
            raise ImageError(
                f"{shown} is too large to read ({size / 1e6:.0f} MB; LocalMind reads at most "
                f"{MAX_FILE_BYTES // 10**6} MB); downscale it first"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{shown}: no such file; check the path") from None
    except OSError as exc:
        raise ImageError(f"{shown} cannot be read: {exc.strerror or exc}") from None
    return _from_bytes(data, label if label == path.name else shown)


def _from_bytes(data: bytes, label: str) -> ImageInput:
    if not data:
        raise ImageError(f"{label} is empty (0 bytes), not an image")
    if data[:256].lstrip().startswith(b"<") and b"<svg" in data[:4096].lower():
        raise ImageError(f"{label}: {_SVG_HINT}")  # <svg, <?xml, <!DOCTYPE svg, a comment
    fmt = _sniff(data)
    image = _open(data, label)
    if fmt is None:  # BMP, TIFF, ...: Pillow reads it; keep it as PNG
        return _from_pil(image, label)
    return _input(data, fmt, image.width, image.height, label)


def _open(data: bytes, label: str) -> PILImage:
    """Decode ``data`` fully (so a truncated file fails here), refusing huge ones first."""
    image: PILImage = _prepare_module().open_checked(data, label)
    return image


def _input(data: bytes, fmt: str, width: int, height: int, label: str) -> ImageInput:
    return ImageInput(data, fmt, width, height, hashlib.sha256(data).hexdigest(), label)


def _from_pil(image: Any, label: str) -> ImageInput:
    prepare = _prepare_module()
    prepare.check_pixels(image.width, image.height, label)
    return _input(prepare.png_bytes(image, label), "png", image.width, image.height, label)


def _from_array(array: Any, label: str) -> ImageInput:
    import numpy as np

    shape = tuple(array.shape)
    if array.ndim not in (2, 3) or (array.ndim == 3 and shape[2] not in (3, 4)):
        raise ImageError(
            f"{label} is an array of shape {shape}; an image is H×W (gray), H×W×3 (RGB) "
            "or H×W×4 (RGBA)"
        )
    if array.dtype != np.uint8:
        if array.dtype.kind == "f":
            hint = "convert with (arr*255).astype('uint8') (values 0..1) or arr.astype('uint8')"
        else:
            hint = "scale it to 0..255 and convert with arr.astype('uint8')"
        raise ImageError(f"{label} is an array of {array.dtype}, not uint8; {hint}")
    prepare = _prepare_module()
    prepare.check_pixels(shape[1], shape[0], label)  # before copying a huge array
    image = prepare.Image.fromarray(np.ascontiguousarray(array))
    return _from_pil(image, label)


def _figure_of(artists: Any, label: str) -> Any:
    """The figure a matplotlib Artist (or the first of a list of them) is drawn on."""
    first = artists[0] if isinstance(artists, (list, tuple)) else artists
    figure = first.get_figure()
    while figure is not None and "matplotlib.figure.Figure" not in _class_names(figure):
        figure = figure.get_figure()  # a SubFigure: up to the figure
    if figure is None:
        raise ImageError(
            f"{label} (matplotlib {type(first).__name__}) is on no figure; pass the figure itself"
        )
    return figure


def _from_figure(figure: Any, label: str) -> ImageInput:
    """A figure as the inline backend shows it: PNG at the figure's dpi, tight box."""
    import io

    if "matplotlib.figure.SubFigure" in _class_names(figure):
        figure = _figure_of(figure, label)
    width, height = (round(v * figure.dpi) for v in figure.get_size_inches())
    _prepare_module().check_pixels(width, height, label)  # before drawing it
    buffer = io.BytesIO()
    try:
        # savefig switches to the Agg canvas for PNG itself, whatever the figure's backend,
        # and works on a figure already closed by plt.close().
        figure.savefig(buffer, format="png", dpi=figure.dpi, bbox_inches="tight")
    except Exception as exc:  # noqa: BLE001 - a broken figure is the user's to fix: say so
        raise ImageError(f"{label}: the figure could not be drawn: {exc}") from None
    return _from_bytes(buffer.getvalue(), label)


def _from_ipython(image: Any, label: str) -> ImageInput:
    data = getattr(image, "data", None)
    if isinstance(data, (bytes, bytearray)) and data:
        return _from_bytes(bytes(data), label)
    filename = getattr(image, "filename", None)
    if filename:
        return _from_path(Path(filename), label)
    if getattr(image, "url", None):
        raise ImageError(
            f"{label} is an IPython Image of a URL, which LocalMind does not fetch; "
            "download it and pass the file (Path('x.png'))"
        )
    raise ImageError(f"{label} is an IPython Image with no data")
