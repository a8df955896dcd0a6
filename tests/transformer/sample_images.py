"""Small images in every input format, made on the fly so the tests need no binary fixtures.

Each maker returns encoded bytes whose content the tests can check after a transform: flat
colours, halves of different colours, known frame counts.
"""

from __future__ import annotations

import io
import struct
import zlib

import pillow_heif
import pyvips
from PIL import Image

RED = (220, 20, 20)
GREEN = (20, 200, 40)
BLUE = (20, 40, 220)


def flat(width: int, height: int, colour: tuple[int, ...] = RED) -> pyvips.Image:
    """A flat sRGB (or sRGBA with four values) image."""
    image = pyvips.Image.black(width, height).new_from_image(list(colour)).cast("uchar")
    return image.copy(interpretation="srgb")


def two_halves(width: int, height: int, left: tuple[int, int, int] = RED,
               right: tuple[int, int, int] = BLUE) -> Image.Image:
    """Left half ``left``, right half ``right``: shows where a rotation moved things."""
    image = Image.new("RGB", (width, height), right)
    image.paste(left, (0, 0, width // 2, height))
    return image


def pillow_bytes(image: Image.Image, fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def jpeg(width: int = 400, height: int = 300, colour: tuple[int, int, int] = RED) -> bytes:
    return pillow_bytes(Image.new("RGB", (width, height), colour), "JPEG", quality=90)


def png(width: int = 400, height: int = 300, colour: tuple[int, ...] = RED) -> bytes:
    mode = "RGBA" if len(colour) == 4 else "RGB"
    return pillow_bytes(Image.new(mode, (width, height), colour), "PNG")


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """Stored 400x300, red left / blue right, with an EXIF orientation tag.

    Orientation 6 means "rotate 90 degrees clockwise to display": displayed 300x400, red on top.
    """
    exif = Image.Exif()
    exif[0x0112] = orientation
    return pillow_bytes(two_halves(400, 300), "JPEG", quality=90, exif=exif.tobytes())


def jpeg_with_exif(width: int = 400, height: int = 300) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "TestCamera"  # Make
    exif[0x0131] = "imgpro tests"  # Software
    return pillow_bytes(Image.new("RGB", (width, height), GREEN), "JPEG", exif=exif.tobytes())


def p3_profiled_jpeg(colour: tuple[int, int, int] = GREEN) -> bytes:
    """``colour`` (sRGB) converted to Display P3 and tagged with the P3 profile.

    Without colour management the P3 numbers are shown as if sRGB, visibly off ``colour``.
    """
    p3 = flat(200, 100, colour).icc_transform("p3")
    return p3.jpegsave_buffer(Q=95, keep=pyvips.ForeignKeep.ICC)


def cmyk_tiff(colour: tuple[int, int, int] = GREEN, embed_profile: bool = False) -> bytes:
    cmyk = flat(200, 100, colour).icc_export(output_profile="cmyk")
    if not embed_profile:
        cmyk = cmyk.copy()
        cmyk.remove("icc-profile-data")
    return cmyk.tiffsave_buffer(keep=pyvips.ForeignKeep.ICC if embed_profile else 0)


def cmyk_jpeg(colour: tuple[int, int, int] = GREEN) -> bytes:
    cmyk = flat(200, 100, colour).icc_export(output_profile="cmyk")
    return cmyk.jpegsave_buffer(Q=95, keep=pyvips.ForeignKeep.ICC)


def rgb16(colour: tuple[int, int, int] = BLUE) -> pyvips.Image:
    return (flat(300, 200, colour) * 257).cast("ushort").copy(interpretation="rgb16")


def rgb16_tiff(colour: tuple[int, int, int] = BLUE) -> bytes:
    return rgb16(colour).tiffsave_buffer()


def rgb16_png(colour: tuple[int, int, int] = BLUE) -> bytes:
    return rgb16(colour).pngsave_buffer(bitdepth=16)


def grey16_png(level: int = 128) -> bytes:
    image = (pyvips.Image.black(300, 200) + level * 257).cast("ushort")  # one band
    return image.copy(interpretation="grey16").pngsave_buffer(bitdepth=16)


def gif(colour: tuple[int, int, int] = RED) -> bytes:
    return pillow_bytes(Image.new("RGB", (400, 300), colour), "GIF")


def animated_gif(colours: tuple[tuple[int, int, int], ...] = (RED, GREEN, BLUE)) -> bytes:
    frames = [Image.new("RGB", (400, 300), c) for c in colours]
    return pillow_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:],
                        duration=[100] * len(frames), loop=0)


def animated_webp(colours: tuple[tuple[int, int, int], ...] = (RED, GREEN, BLUE)) -> bytes:
    frames = [Image.new("RGB", (400, 300), c) for c in colours]
    return pillow_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:],
                        duration=[100] * len(frames), loop=0, quality=90)


def svg(width: int = 1000, height: int = 500, colour: str = "#dc1414") -> bytes:
    return (f'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}"><rect width="100%" height="100%" fill="{colour}"/></svg>').encode()


def heic_hevc(width: int = 400, height: int = 300, colour: tuple[int, int, int] = RED) -> bytes:
    heif = pillow_heif.from_pillow(Image.new("RGB", (width, height), colour))
    out = io.BytesIO()
    heif.save(out, quality=90)
    return out.getvalue()


def avif(width: int = 400, height: int = 300, colour: tuple[int, int, int] = RED) -> bytes:
    return flat(width, height, colour).heifsave_buffer(compression="av1", Q=90, effort=0)


def tiff(colour: tuple[int, int, int] = RED) -> bytes:
    return flat(400, 300, colour).tiffsave_buffer(compression="deflate")


def bmp(colour: tuple[int, ...] = RED, width: int = 400, height: int = 300) -> bytes:
    mode = "RGBA" if len(colour) == 4 else "RGB"
    return pillow_bytes(Image.new(mode, (width, height), colour), "BMP")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` with almost no pixel data: a bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _png_chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF0 frame header is patched to declare ``width`` x ``height``."""
    data = bytearray(jpeg(16, 16))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b"\x3b"


def bmp_declaring(width: int, height: int) -> bytes:
    data = bytearray(bmp(width=4, height=4))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def jpeg_with_broken_icc(colour: tuple[int, int, int] = GREEN) -> bytes:
    """A JPEG whose APP2 ICC_PROFILE segment holds garbage (libvips would not write one)."""
    data = flat(200, 100, colour).jpegsave_buffer(Q=90)
    payload = b"ICC_PROFILE\x00\x01\x01" + b"garbage!" * 64
    segment = b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]
