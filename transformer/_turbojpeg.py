"""JPEG decoding through libjpeg-turbo's TurboJPEG API (the ``simplejpeg`` wheel).

Why: decoding into one buffer with TurboJPEG and handing that to libvips costs less CPU than
libvips' own ``jpegload`` at the same DCT scale, for the same pixels (README, "Transform
library", has the figures and the command that measured them).

The scale is the one libvips would use (``transformer._sizing.jpeg_shrink_on_load``: 1/1, 1/2,
1/4 or 1/8), not TurboJPEG's finer M/8 steps: those were faster still, but decoding a detailed
painting at 3/8 instead of 1/2 for an l rendition aliased its finest detail, which the lanczos3
reduce after a 1/2 decode does not (README, "Transform library", has the PSNR).

It decodes a whole (scaled) image at once, where libvips streams rows, so it is used only
where the decoded image is small (``MAX_DECODED_BYTES``), and only for what it decodes
exactly as libvips would: 8-bit YCbCr, RGB or greyscale JPEG. Everything else, and anything
TurboJPEG refuses, goes to libvips, which also decides what is really corrupt.
"""

from __future__ import annotations

import pyvips
import simplejpeg

MAX_DECODED_BYTES = 16 << 20
"""Largest scaled decode done here (~5 MP RGB: every s/m/l rendition of a photo); larger
decodes, such as an original-size rendition of a big photo, stream through libvips."""


def decoded_size(width: int, height: int, shrink: int) -> tuple[int, int]:
    """The size libjpeg decodes a ``width`` x ``height`` JPEG to at 1/``shrink`` (rounded up)."""
    return -(-width // shrink), -(-height // shrink)


def decode_scaled(data: bytes, shrink: int, *, orientation: int,
                  icc_profile: bytes | None) -> pyvips.Image | None:
    """The JPEG decoded at scale 1/``shrink`` (1, 2, 4 or 8), as a libvips image carrying the
    original's orientation and ICC profile; None when libvips should decode it instead (too
    large once decoded, CMYK/YCCK, or data TurboJPEG would not read)."""
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("YCbCr", "RGB", "Gray"):
        return None
    grey = colorspace == "Gray"
    bands = 1 if grey else 3
    decoded_width, decoded_height = decoded_size(width, height, shrink)
    if decoded_width * decoded_height * bands > MAX_DECODED_BYTES:
        return None
    try:
        # The smallest TurboJPEG scale whose output covers these sizes is exactly 1/shrink.
        pixels = simplejpeg.decode_jpeg(data, "GRAY" if grey else "RGB",
                                        min_height=decoded_height, min_width=decoded_width)
    except ValueError:
        return None
    if pixels.shape[:2] != (decoded_height, decoded_width):
        return None  # not the scale asked for: let libvips do it
    image = pyvips.Image.new_from_memory(pixels.data, pixels.shape[1], pixels.shape[0], bands,
                                         "uchar")
    image = image.copy(interpretation="b-w" if grey else "srgb")
    if orientation != 1:
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    if icc_profile:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc_profile)
    return image
