"""The magic's ``{name}`` filling; it lives in the core (``core/interpolation.py``), where the
batch runner fills DataFrame templates the same way."""

from __future__ import annotations

from ..core.interpolation import Interpolated, describe_missing, interpolate

__all__ = ["Interpolated", "describe_missing", "interpolate"]
