"""The embedded transform library: ``transform`` and ``probe`` work without any server.

    from transformer import transform, probe
    rendition = transform(open("photo.jpg", "rb").read(), size="m", fmt="webp")
"""

from transformer._errors import ImageTooLarge, TransformError, TransformTimeout, UnsupportedImage
from transformer._types import (
    EXTENSION_ALIASES,
    FORMATS,
    MEDIA_TYPES,
    SHORT_EDGE,
    SIZES,
    Format,
    ImageInfo,
    Rendition,
    Size,
)

__all__ = [
    "EXTENSION_ALIASES",
    "FORMATS",
    "MEDIA_TYPES",
    "SHORT_EDGE",
    "SIZES",
    "Format",
    "ImageInfo",
    "ImageTooLarge",
    "Rendition",
    "Size",
    "TransformError",
    "TransformTimeout",
    "UnsupportedImage",
]
