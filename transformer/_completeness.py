"""Is the file all there? Cheap structural checks of a file's end, made before any decode.

A probe reads headers, and headers survive truncation: an upload cut off at 30 % still
declares its full size. Without these checks such a file was stored (and counted against the
quota) and then failed every rendition forever (hostile-input audit). Each check reads a few
bytes near the end or walks the format's own length fields; none decodes pixels.

- JPEG: an EOI marker (FF D9) after the first scan. Entropy-coded data never contains FF D9
  (a data FF is always followed by 00 or a restart marker), so one found there ends the image;
  data appended after it (a Motion Photo's video, a camera's trailer) is allowed.
- PNG: the IEND chunk, whose CRC is fixed (AE 42 60 82).
- GIF: the trailer ';', optionally followed by zero padding (libnsgif otherwise repeats the last
  whole frame in place of missing ones: a plausible but wrong animation).
- WebP: the RIFF length covers the data.
- BMP (uncompressed): the pixel rows the header declares are present.
TIFF, HEIF/AVIF and SVG are left to their decoders, which notice missing data themselves.
"""

from __future__ import annotations

import mmap

from transformer._errors import UnsupportedImage

_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = 0xDA
_PNG_IEND = b"IEND\xaeB`\x82"
_BMP_UNCOMPRESSED = (0, 3, 6)  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS


Data = bytes | mmap.mmap
"""The file's bytes or a read-only map of it: both slice to bytes and have ``rfind``."""
_TAIL_BLOCK = 4096


def check_complete(kind: str, data: Data) -> None:
    """Raise ``UnsupportedImage`` when ``data`` (sniffed as ``kind``) is visibly cut short."""
    complete = {
        "jpeg": _jpeg_complete,
        "png": lambda d: d.rfind(_PNG_IEND) != -1,
        "gif": _gif_complete,
        "webp": lambda d: len(d) >= 8 + int.from_bytes(d[4:8], "little"),
        "bmp": _bmp_complete,
    }.get(kind)
    if complete is not None and not complete(data):
        raise UnsupportedImage(f"the {kind.upper()} image is truncated (its end is missing)")


def _gif_complete(data: Data) -> bool:
    """The last byte that is not zero padding is the trailer ``;`` (read from the end in
    blocks, so a map is not paged in whole)."""
    end = len(data)
    while end > 0:
        block = data[max(0, end - _TAIL_BLOCK):end].rstrip(b"\0")
        if block:
            return block.endswith(b";")
        end -= _TAIL_BLOCK
    return False


def _jpeg_complete(data: Data) -> bool:
    sos = _first_scan(data)
    return sos is not None and data.rfind(_JPEG_EOI) > sos


def _first_scan(data: Data) -> int | None:
    """Offset of the first SOS marker, walking the marker segments from SOI."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        elif marker == _JPEG_SOS:
            return i
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def _bmp_complete(data: Data) -> bool:
    if len(data) < 34 or int.from_bytes(data[14:18], "little") < 40:
        return True  # OS/2 core headers: rare, left to the decoder
    if int.from_bytes(data[30:34], "little") not in _BMP_UNCOMPRESSED:
        return True  # RLE: the decoder notices a short stream
    width = abs(int.from_bytes(data[18:22], "little", signed=True))
    height = abs(int.from_bytes(data[22:26], "little", signed=True))
    bits = int.from_bytes(data[28:30], "little")
    row = (width * bits + 31) // 32 * 4
    return len(data) >= int.from_bytes(data[10:14], "little") + row * height
