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

ENCODER_SETTINGS_VERSION = "e4"
"""Bump whenever a constant below changes (part of every rendition cache key).
e4: every rendition declares 72 dpi (``PIXELS_PER_MM``) whatever its original said."""

PIXELS_PER_MM = 72 / 25.4
"""The density every rendition declares (JFIF, pHYs, ...): 72 dpi, as sharp writes. An
original's own density is print metadata, meaningless on the web; copying it made a
rendition's bytes depend on which decoder read the original (README, "Transform library")."""

QUALITY = 80
"""The same quality everywhere, as the comparison with sharp/ipx and thumbor assumes."""

JPEG_OPTIMIZE_CODING = True
"""Optimal Huffman tables: -3 % bytes for ~2 ms, the same pixels (sharp's default too)."""
JPEG_INTERLACE = True
"""Progressive: a further -1.4 % bytes for ~6 ms per m rendition, the same pixels, and
browsers show a whole preview early."""
JPEG_TRELLIS_QUANT = False
"""-11 % bytes but lower SSIM (0.9781 vs 0.9795) and ~+24 ms (5x the encode): not at q80."""
JPEG_OVERSHOOT_DERINGING = False
JPEG_OPTIMIZE_SCANS = False
"""-2 % more bytes for ~+18 ms: the encode would cost 2.5x as much as progressive alone."""
JPEG_QUANT_TABLE = 0
"""Table 3 (ImageMagick) saves 6 % bytes only by lowering quality (SSIM 0.9769)."""
JPEG_SUBSAMPLE_MODE = "on"
"""Always 4:2:0 chroma, as sharp does at q80 (libvips' "auto" gives 4:2:0 below Q90 anyway)."""

WEBP_EFFORT = 2
"""1.04x the bytes of sharp's effort 4 at half its encode CPU (48 vs 91 ms for m); effort 3
saves only 3 % more bytes but costs as much as 4."""
WEBP_SMART_SUBSAMPLE = False
"""Costs 2x the encode and makes files bigger at the same SSIM."""

AVIF_EFFORT = 0
"""~126 ms for an l rendition against 8.1 s at libvips' default 4 (1.14x the bytes, same SSIM);
effort 1 already takes 379 ms, too slow for a CDN miss at 8 concurrent on 2 cores."""
AVIF_SUBSAMPLE_MODE = "on"

PNG_COMPRESSION = 6
"""zlib's default: level 9 saves 4 % for +74 % CPU, level 1 costs 21 % more bytes."""
PNG_PALETTE = False
"""Quantising to 256 colours is lossy and took ~1.2 s per m photo."""

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
