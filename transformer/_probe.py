"""Read what an image declares about itself (type, size, frames, orientation) without decoding.

Everything that must be refused before any pixel is decoded is decided here: the type comes from
the magic bytes (``transformer._sniff``), never a name; the pixel count comes from the header, so
a decompression bomb (a tiny file declaring 50000x50000) is refused while it is still tiny.

libvips reads the headers of the formats it decodes (``new_from_source`` is lazy: it parses
the header and stops). SVG is the exception: librsvg parses the whole document to learn its
size, so that runs in a killable, memory-capped child (``transformer._svg_sandbox``). BMP is
read by Pillow, whose ``Image.open`` is header-only too; we check the declared size ourselves
first, from the fixed BMP header fields, so Pillow's own bomb check never fires with a warning
in the middle of a request.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
from dataclasses import dataclass
from typing import IO, Literal

import pyvips
from PIL import Image

from transformer._completeness import check_complete
from transformer._engine import ensure_initialised, load_from_memory
from transformer._errors import ImageTooLarge, UnsupportedImage
from transformer._sniff import SNIFF_BYTES, sniff_format
from transformer._svg_sandbox import probe_svg
from transformer._types import ImageInfo

Decoder = Literal["vips", "turbojpeg", "pillow", "pillow-heif", "svg-sandbox"]

ANIMATED_FORMATS = frozenset({"gif", "webp"})
"""Formats whose extra pages are animation frames (a multi-page TIFF or HEIF is not animated)."""

WHOLE_IMAGE_DECODERS = frozenset({"gif", "webp", "heic", "avif", "tiff", "bmp"})
"""Formats whose decoders hold a whole frame (or strip) in memory rather than streaming rows."""

PILLOW_BYTES_PER_PIXEL = 8
"""Pillow's decode, its RGB(A) conversion and the copy handed to libvips live at once."""

_SAMPLE_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4,
                 "float": 4, "complex": 8, "double": 8, "dpcomplex": 16}

_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True, slots=True)
class Header:
    """The public ``ImageInfo`` plus what the pipeline needs to plan the work."""

    info: ImageInfo
    decoder: Decoder
    buffered_bytes: int = 0
    """Estimated memory of a decode that must hold the whole image (progressive JPEG,
    interlaced PNG, GIF, WebP, HEIF, TIFF, BMP); 0 for inputs that stream (baseline JPEG,
    PNG, SVG). The pipeline reserves it from the process's decode memory budget."""
    icc_profile: bytes | None = None
    """The embedded ICC profile, kept for the ``turbojpeg`` decoder (libvips' loaders attach
    it to the image themselves)."""

    @property
    def pixels(self) -> int:
        return self.info.width * self.info.height

    @property
    def animated(self) -> bool:
        return self.info.format in ANIMATED_FORMATS and self.info.frames > 1


Data = bytes | mmap.mmap
"""What the header readers accept: the bytes of a file, or a read-only map of one."""


def read_header(data: Data, *, descriptor: int | None = None) -> Header:
    """Type, dimensions and layout of ``data`` from its header alone.

    With ``descriptor`` (the open file that ``data`` maps), libvips reads the header through
    the file; otherwise from ``data`` where it lies (``load_from_memory``: no copy).
    Raises ``UnsupportedImage`` for anything we do not recognise or cannot parse.
    """
    kind = sniff_format(data[:SNIFF_BYTES])
    if kind is None:
        raise UnsupportedImage("not an image in a supported format (JPEG, PNG, WebP, GIF, "
                               "SVG, HEIC, AVIF, TIFF, BMP)")
    if kind == "bmp":
        return _bmp_header(data)
    if kind == "svg":
        return _svg_header(data if isinstance(data, bytes) else data[:])
    return _vips_header(kind, data, descriptor)


def refuse_oversized(header: Header, max_pixels: int | None, *, frames: int = 1) -> None:
    """Raise ``ImageTooLarge`` when the declared pixels (times ``frames``) exceed the limit."""
    if max_pixels is None:
        return
    declared = header.pixels * frames
    if declared > max_pixels:
        what = f"{header.info.width}x{header.info.height}"
        if frames > 1:
            what += f" x {frames} frames"
        raise ImageTooLarge(f"image declares {what} = {declared} pixels, "
                            f"more than the limit of {max_pixels}")


def probe(data: bytes, *, max_pixels: int | None = None) -> ImageInfo:
    """What the image declares: format, displayed width/height, frames, orientation, alpha.

    Reads headers only (and checks that the file's end is there); nothing is decoded. With
    ``max_pixels`` set, an image declaring more pixels than that raises ``ImageTooLarge`` (the
    same check ``transform`` makes); a file cut short raises ``UnsupportedImage``.
    """
    header = read_header(data)
    refuse_oversized(header, max_pixels)
    check_complete(header.info.format, data)
    return header.info


def probe_file(file: IO[bytes], *, max_pixels: int | None = None) -> ImageInfo:
    """``probe`` of an image in an open file (a spooled upload), without reading it into memory.

    libvips reads the header through the file descriptor, and the completeness check reads
    the few bytes it needs through a read-only map, so a large file costs page cache, not a
    copy in the process: ``probe(bytes)`` hands libvips the buffer, which it copies whole. An
    SVG is the exception (its sandboxed parser needs the document), so callers that accept
    large files should refuse a large SVG by its size before probing.
    """
    descriptor = file.fileno()
    if os.fstat(descriptor).st_size == 0:
        raise UnsupportedImage("the file is empty")
    view = mmap.mmap(descriptor, 0, access=mmap.ACCESS_READ)
    try:
        header = read_header(view, descriptor=descriptor)
        refuse_oversized(header, max_pixels)
        check_complete(header.info.format, view)
    finally:
        # A reader still holding the map (BufferError) lets it be unmapped when collected.
        with contextlib.suppress(BufferError):
            view.close()
    return header.info


def _vips_header(kind: str, data: Data, descriptor: int | None = None) -> Header:
    ensure_initialised()
    try:
        if descriptor is not None:
            source = pyvips.Source.new_from_descriptor(descriptor)
            image = pyvips.Image.new_from_source(source, "", access="sequential")
        else:
            image = load_from_memory(data, access="sequential")
        width, height, has_alpha = image.width, image.height, bool(image.hasalpha())
        fields = set(image.get_fields())
        pages = int(image.get("n-pages")) if "n-pages" in fields else 1
        orientation = int(image.get("orientation")) if "orientation" in fields else 1
        interlaced = "interlaced" in fields and bool(image.get("interlaced"))
        pixel_bytes = image.bands * _SAMPLE_BYTES.get(image.format, 8)
        compression = str(image.get("heif-compression")) if "heif-compression" in fields else ""
        # 8-bit YCbCr or greyscale JPEG: TurboJPEG decodes it as libvips would, for less CPU
        # (transformer._turbojpeg); CMYK/YCCK and anything unusual stay with libvips.
        turbo = (kind == "jpeg" and image.format == "uchar"
                 and (image.bands, image.interpretation) in ((3, "srgb"), (1, "b-w")))
        icc = bytes(image.get("icc-profile-data")) if turbo and "icc-profile-data" in fields \
            else None
    except pyvips.Error as exc:
        raise UnsupportedImage(f"not a readable {kind.upper()} image") from exc
    decoder: Decoder = "turbojpeg" if turbo else "vips"
    if kind in ("heic", "avif"):
        # The brand says HEIF; the codec inside decides the decoder. libvips' wheel decodes
        # AV1 but has no HEVC decoder, so HEVC goes to pillow-heif (libde265).
        kind = "avif" if compression == "av1" else "heic"
        decoder = "pillow-heif" if compression == "hevc" else "vips"
    if not 1 <= orientation <= 8:
        orientation = 1
    if orientation >= 5:  # 90/270 degree rotations swap the displayed edges
        width, height = height, width
    frames = pages if kind in ANIMATED_FORMATS else 1
    info = ImageInfo(format=kind, width=width, height=height, frames=max(1, frames),
                     orientation=orientation, has_alpha=has_alpha)
    if decoder == "pillow-heif":
        buffered = width * height * PILLOW_BYTES_PER_PIXEL
    elif kind == "jpeg" and interlaced:  # progressive: 16-bit DCT coefficients per sample
        buffered = width * height * pixel_bytes * 2
    elif interlaced or kind in WHOLE_IMAGE_DECODERS:
        buffered = width * height * pixel_bytes
    else:
        buffered = 0
    return Header(info=info, decoder=decoder, buffered_bytes=buffered, icc_profile=icc)


def _svg_header(data: bytes) -> Header:
    # librsvg parses the whole document to learn its size: unbounded time and memory for a
    # crafted SVG, so even the header is read in a child process (transformer._svg_sandbox).
    svg = probe_svg(data)
    info = ImageInfo(format="svg", width=svg.width, height=svg.height, has_alpha=svg.has_alpha)
    return Header(info=info, decoder="svg-sandbox")


def _bmp_header(data: Data) -> Header:
    width, height = _bmp_dimensions(data)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pillow_limit is not None and width * height > pillow_limit:
        # Pillow's own bomb limit: beyond it Pillow warns or refuses; we refuse cleanly.
        raise ImageTooLarge(f"BMP declares {width}x{height} = {width * height} pixels, more "
                            f"than the {pillow_limit} Pillow decodes safely")
    try:
        # Pillow reads the headers and the palette only; a map is a file object already
        # (io.BytesIO would copy it whole).
        source: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes) else data  # type: ignore[assignment]
        source.seek(0)
        with Image.open(source, formats=["BMP"]) as image:
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    except _PILLOW_ERRORS as exc:
        raise UnsupportedImage("not a readable BMP image") from exc
    info = ImageInfo(format="bmp", width=width, height=height, has_alpha=has_alpha)
    return Header(info=info, decoder="pillow",
                  buffered_bytes=width * height * PILLOW_BYTES_PER_PIXEL)


def _bmp_dimensions(data: Data) -> tuple[int, int]:
    """Width and height from the BMP file and DIB headers (OS/2 core or Windows info)."""
    if len(data) < 26:
        raise UnsupportedImage("not a readable BMP image (header cut short)")
    dib_size = int.from_bytes(data[14:18], "little")
    if dib_size == 12:
        width = int.from_bytes(data[18:20], "little")
        height = int.from_bytes(data[20:22], "little")
    else:
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = abs(int.from_bytes(data[22:26], "little", signed=True))  # < 0: top-down rows
    if width < 1 or height < 1:
        raise UnsupportedImage(f"not a readable BMP image (declares {width}x{height})")
    return width, height
