"""Decoding the inputs that the libvips wheel cannot: BMP (Pillow) and HEVC-coded HEIC
(pillow-heif, i.e. libheif with libde265).

Both decode eagerly into memory, which is why the pixel limit is checked from the header
before we get here. The result is handed to libvips as an 8-bit sRGB(A) image with any ICC
profile attached, so resizing, colour management and encoding are the same code as for every
other input.
"""

from __future__ import annotations

import io

import pillow_heif
import pyvips
from PIL import Image

from transformer._errors import UnsupportedImage

_ERRORS = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, Image.DecompressionBombError)


def decode_bmp(data: bytes) -> pyvips.Image:
    """A BMP as a libvips image (truncated files raise ``UnsupportedImage``)."""
    try:
        with Image.open(io.BytesIO(data), formats=["BMP"]) as image:
            image.load()
            return _to_vips(image)
    except _ERRORS as exc:
        raise UnsupportedImage("not a readable BMP image (truncated or corrupt)") from exc


def decode_heif(data: bytes) -> pyvips.Image:
    """The primary image of a HEIF container, rotated/mirrored as its transforms say."""
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        image = heif.to_pillow()
        image.info["icc_profile"] = heif.info.get("icc_profile") or image.info.get("icc_profile")
        return _to_vips(image)
    except _ERRORS as exc:
        raise UnsupportedImage("not a readable HEIC image (truncated or corrupt)") from exc


def _to_vips(image: Image.Image) -> pyvips.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha else "RGB"
    icc = image.info.get("icc_profile")
    converted = image if image.mode == mode else image.convert(mode)
    out = pyvips.Image.new_from_memory(
        converted.tobytes(), converted.width, converted.height, len(mode), "uchar"
    ).copy(interpretation="srgb")
    if icc:
        out.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    return out
