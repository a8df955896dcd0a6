"""Typed vocabulary of the transform library: sizes, formats, and what a transform returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Size = Literal["s", "m", "l"]
"""A named rendition size; each constrains the SHORT edge (see ``SHORT_EDGE``)."""

Format = Literal["jpeg", "png", "webp", "avif"]
"""An output format, chosen by the URL extension."""

SIZES: tuple[Size, ...] = get_args(Size)
FORMATS: tuple[Format, ...] = get_args(Format)

SHORT_EDGE: dict[Size, int] = {"s": 320, "m": 640, "l": 1080}

MEDIA_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
    "svg": "image/svg+xml",
    "heic": "image/heic",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
}

EXTENSION_ALIASES: dict[str, Format] = {
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "png": "png",
    "webp": "webp",
    "avif": "avif",
}
"""URL extension -> output format. ``.jpg`` and ``.jpeg`` are the same thing."""


@dataclass(frozen=True, slots=True)
class Rendition:
    """Encoded output of :func:`transformer.transform`."""

    data: bytes
    width: int
    height: int
    format: Format

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What :func:`transformer.probe` learns from the header alone.

    ``format`` is one of jpeg, png, webp, gif, svg, heic, avif, tiff, bmp. ``width`` and
    ``height`` are as displayed, i.e. after the EXIF orientation is applied.
    """

    format: str
    width: int
    height: int
    frames: int = 1
    orientation: int = 1
    has_alpha: bool = False

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]
