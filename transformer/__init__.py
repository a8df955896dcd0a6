"""The embedded transform library: ``transform`` and ``probe`` work without any server.

    from transformer import transform, probe
    rendition = transform(open("photo.jpg", "rb").read(), size="m", fmt="webp")
"""

from transformer._encoder_settings import (
    ENCODER_SETTINGS_VERSION,
    SAVE_SUFFIX,
    Effort,
    encoder_options,
)
from transformer._engine import configure
from transformer._errors import ImageTooLarge, TransformError, TransformTimeout, UnsupportedImage
from transformer._pipeline import DEFAULT_MAX_PIXELS, transform
from transformer._probe import probe, probe_file
from transformer._sizing import target_dimensions
from transformer._sniff import SNIFF_BYTES, sniff_format
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
    "DEFAULT_MAX_PIXELS",
    "ENCODER_SETTINGS_VERSION",
    "EXTENSION_ALIASES",
    "Effort",
    "FORMATS",
    "MEDIA_TYPES",
    "SAVE_SUFFIX",
    "SHORT_EDGE",
    "SIZES",
    "SNIFF_BYTES",
    "Format",
    "ImageInfo",
    "ImageTooLarge",
    "Rendition",
    "Size",
    "TransformError",
    "TransformTimeout",
    "UnsupportedImage",
    "configure",
    "encoder_options",
    "probe",
    "probe_file",
    "sniff_format",
    "target_dimensions",
    "transform",
]
