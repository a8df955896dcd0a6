"""JPEG encoding through jpegli, Google's libjpeg-compatible encoder (the ``pyjpegli`` wheel),
optionally followed by a lossless rewrite with mozjpeg's jpegtran (the
``mozjpeg-lossless-optimization`` wheel).

Why: at the same SSIMULACRA2 score jpegli's renditions are smaller than libvips' libjpeg ones,
and the encode is faster too (docs/bench-quality.md has the figures and the command). Its
output is an ordinary baseline JPEG that every decoder reads, but with the standard Huffman
tables: rewriting it losslessly with optimal tables as a progressive JPEG (what ``jpegtran
-optimize -progressive`` does) gives the same pixels in fewer bytes, for more CPU than the
encode itself. So the fast setting stops after jpegli and the final one adds the rewrite.

Why this binding: ``pyjpegli`` ships jpegli compiled into manylinux/macOS/Windows wheels for
CPython 3.9-3.15, with no system library to install. It is deliberately small: packed 8-bit RGB
in, baseline 4:2:0 JPEG out, one ``quality`` knob. That is what renditions need (they are sRGB
by the time they are encoded), and whatever it cannot take goes to libvips instead:

- greyscale renditions (one band: jpegli through this binding would triple them to RGB);
- renditions too large to hold whole in memory (``MAX_PIXELS``): jpegli needs the packed
  pixels in one buffer, libvips' saver streams them;
- the wheel missing or failing to import on some platform, or jpegli raising.

``encode`` returns None in all of these cases, and the caller encodes with the libvips
fallback setting (``transformer._encoder_settings``), so a rendition is always produced. If only
the lossless rewrite is unavailable or fails, jpegli's baseline JPEG is kept: same pixels.

jpegli writes no JFIF segment; ``encode`` adds the 18-byte JFIF APP0 that declares 72 dpi,
as every rendition does (``PIXELS_PER_MM``).
"""

from __future__ import annotations

import importlib
import struct
from types import ModuleType

import pyvips


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except (ImportError, OSError):  # no wheel for this platform, or a broken shared object
        return None


_pyjpegli = _load("pyjpegli")
_lossless = _load("mozjpeg_lossless_optimization")

MAX_PIXELS = 24_000_000
"""Largest rendition encoded here (72 MB of packed RGB): every s/m/l rendition and most
original-size ones; larger images stream through libvips' saver instead."""

JFIF_72_DPI = b"\xff\xe0" + struct.pack(">H5sBBBHHBB", 16, b"JFIF\0", 1, 1, 1, 72, 72, 0, 0)
"""JFIF APP0: version 1.01, density in dots per inch, 72 x 72, no thumbnail."""


def available() -> bool:
    """Whether jpegli can be used in this process (the wheel imported)."""
    return _pyjpegli is not None


def can_encode(image: pyvips.Image) -> bool:
    """Whether ``encode`` takes ``image``: the wheel imported, 8-bit sRGB, 3 bands, not huge."""
    return (_pyjpegli is not None and image.bands == 3 and image.format == "uchar"
            and image.interpretation == "srgb" and image.width * image.height <= MAX_PIXELS)


def encode(image: pyvips.Image, quality: int, *, progressive: bool = False) -> bytes | None:
    """``image`` as a 4:2:0 JPEG made by jpegli at ``quality``, declaring 72 dpi; None when
    jpegli cannot take it (``can_encode``) or fails, and libvips should encode it.

    ``progressive`` rewrites jpegli's baseline output losslessly (``optimize_losslessly``).

    Computing the pixels evaluates the libvips pipeline, so a ``pyvips.Error`` from the decode
    (a corrupt original, or the deadline killing the image) propagates as from libvips' saver.
    """
    if _pyjpegli is None or not can_encode(image):
        return None
    return encode_pixels(image.write_to_memory(), image.width, image.height, quality,
                         progressive=progressive)


def encode_pixels(pixels: bytes, width: int, height: int, quality: int, *,
                  progressive: bool = False) -> bytes | None:
    """``encode`` of pixels already computed: packed 8-bit sRGB, ``width`` x ``height``, as
    ``Image.write_to_memory`` gives them for an image ``can_encode`` takes. None when the wheel
    is missing or jpegli fails."""
    if _pyjpegli is None:
        return None
    try:
        data = _pyjpegli.encode(pixels, width, height, quality=quality)
    except (RuntimeError, ValueError, TypeError, MemoryError):
        return None
    data = with_jfif_density(data)
    return optimize_losslessly(data) if progressive else data


def optimize_losslessly(data: bytes) -> bytes:
    """``data`` (a JPEG) rewritten with optimal Huffman tables as a progressive JPEG, the same
    coefficients and so the same pixels (mozjpeg's ``jpegtran -optimize -progressive -copy
    none``); ``data`` itself when the wheel is missing or the rewrite fails."""
    if _lossless is None:
        return data
    try:
        optimized = bytes(_lossless.optimize(data))
    except (ValueError, RuntimeError, MemoryError):
        return data
    if optimized[:2] != b"\xff\xd8" or len(optimized) >= len(data):
        return data
    return with_jfif_density(optimized)


def with_jfif_density(data: bytes) -> bytes:
    """``data`` (a JPEG) with the 72 dpi JFIF segment right after its start marker, unless it
    already starts with an APP0 segment."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    if data[2:4] == b"\xff\xe0":
        return data
    return data[:2] + JFIF_72_DPI + data[2:]
