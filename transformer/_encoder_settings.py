"""Encoder settings of every rendition: the one place they are defined.

They were chosen by measurement (``python bench/encoder_settings.py``; the table and the
reasoning are in README, "Encoder settings and how they were chosen"). Changing any value here
changes the bytes of renditions, so ``ENCODER_SETTINGS_VERSION`` must change with it: the
rendition caches include it in their keys, and old renditions then simply stop being hit.
"""

from __future__ import annotations

from typing import Any

import pyvips

from transformer._types import Format

ENCODER_SETTINGS_VERSION = "e1"
"""Bump whenever a constant below changes (part of every rendition cache key)."""

QUALITY = 80
"""The same quality everywhere, as the comparison with sharp/ipx and thumbor assumes."""

JPEG_OPTIMIZE_CODING = True
JPEG_TRELLIS_QUANT = False
JPEG_OVERSHOOT_DERINGING = False
JPEG_OPTIMIZE_SCANS = False
JPEG_QUANT_TABLE = 0
JPEG_INTERLACE = False
JPEG_SUBSAMPLE_MODE = "on"
"""Always 4:2:0 chroma, as sharp does at q80 (libvips' "auto" keeps 4:4:4 at Q >= 90 only)."""

WEBP_EFFORT = 2
WEBP_SMART_SUBSAMPLE = False

AVIF_EFFORT = 0
"""libvips' default 4 took ~6 s for one l rendition; 0 keeps a CDN miss well under a second."""
AVIF_SUBSAMPLE_MODE = "on"

PNG_COMPRESSION = 6
PNG_PALETTE = False

SAVE_SUFFIX: dict[Format, str] = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "avif": ".avif"}
"""The suffix that picks libvips' saver in ``Image.write_to_buffer``."""

_NO_METADATA = pyvips.ForeignKeep.NONE
"""Renditions carry no EXIF/XMP/IPTC/ICC: pixels are converted to sRGB first, which browsers
assume for untagged images, and EXIF alone costs up to ~49 KB per rendition."""


def encoder_options(fmt: Format) -> dict[str, Any]:
    """Keyword arguments for ``image.write_to_buffer(SAVE_SUFFIX[fmt], **options)``.

    The CDN, the embedded library and the benchmarks' in-process baseline all encode with
    exactly these, so their figures compare like with like.
    """
    if fmt == "jpeg":
        return {
            "Q": QUALITY,
            "optimize_coding": JPEG_OPTIMIZE_CODING,
            "trellis_quant": JPEG_TRELLIS_QUANT,
            "overshoot_deringing": JPEG_OVERSHOOT_DERINGING,
            "optimize_scans": JPEG_OPTIMIZE_SCANS,
            "quant_table": JPEG_QUANT_TABLE,
            "interlace": JPEG_INTERLACE,
            "subsample_mode": JPEG_SUBSAMPLE_MODE,
            "keep": _NO_METADATA,
        }
    if fmt == "webp":
        return {
            "Q": QUALITY,
            "effort": WEBP_EFFORT,
            "smart_subsample": WEBP_SMART_SUBSAMPLE,
            "keep": _NO_METADATA,
        }
    if fmt == "avif":
        return {
            "Q": QUALITY,
            "effort": AVIF_EFFORT,
            "subsample_mode": AVIF_SUBSAMPLE_MODE,
            "keep": _NO_METADATA,
        }
    if fmt == "png":
        return {"compression": PNG_COMPRESSION, "palette": PNG_PALETTE, "keep": _NO_METADATA}
    raise ValueError(f"unknown output format {fmt!r}")
