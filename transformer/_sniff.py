"""Image type from the first bytes of a file: the magic numbers, never the name.

Cheap enough for the CDN hot path, which must know an original's type from its first chunk
(to serve it unchanged) without decoding or reading the rest.
"""

from __future__ import annotations

import re

SNIFF_BYTES = 1024
"""How many leading bytes ``sniff_format`` looks at."""

_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_SVG_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*<svg[\s>]",
    re.DOTALL | re.IGNORECASE,
)


def sniff_format(head: bytes) -> str | None:
    """jpeg, png, gif, webp, avif, heic, tiff, bmp or svg; None when unrecognised."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return _heif_family(head)
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    if _SVG_START.match(head[:SNIFF_BYTES]):
        return "svg"
    return None


def _heif_family(head: bytes) -> str | None:
    box_size = int.from_bytes(head[0:4], "big")
    brands = {head[8:12]}
    end = min(box_size, len(head))
    brands.update(head[i : i + 4] for i in range(16, end - 3, 4))
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIF_BRANDS:
        return "heic"
    return None
