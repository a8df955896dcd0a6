"""The embedded transform library: ``transform`` and ``probe`` work without any server.

    from transformer import transform, probe
    rendition = transform(open("photo.jpg", "rb").read(), size="m", fmt="webp")

Each public name is loaded from its private module on first use (PEP 562), so ``import
transformer`` costs nothing until a name is asked for, and asking for the light ones (the
vocabulary, the errors, ``sniff_format``) never loads libvips. That matters to every process
that touches the package without transforming: ``imgpro serve``'s supervisor and the client
commands (the origin's error body lives in ``transformer.origin``, the upload client sniffs
types), which would otherwise each carry libvips, Pillow and NumPy for nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and readers see; at run time __getattr__ loads them
    from transformer._encoder_settings import (
        ENCODER_SETTINGS_VERSION,
        REFINABLE_FORMATS,
        SAVE_SUFFIX,
        Effort,
        encoder_options,
    )
    from transformer._engine import configure
    from transformer._errors import (
        ImageTooLarge,
        TransformError,
        TransformTimeout,
        UnsupportedImage,
    )
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

_HOMES: dict[str, str] = {
    "ENCODER_SETTINGS_VERSION": "_encoder_settings",
    "SAVE_SUFFIX": "_encoder_settings",
    "REFINABLE_FORMATS": "_encoder_settings",
    "Effort": "_encoder_settings",
    "encoder_options": "_encoder_settings",
    "configure": "_engine",
    "ImageTooLarge": "_errors",
    "TransformError": "_errors",
    "TransformTimeout": "_errors",
    "UnsupportedImage": "_errors",
    "DEFAULT_MAX_PIXELS": "_pipeline",
    "transform": "_pipeline",
    "probe": "_probe",
    "probe_file": "_probe",
    "target_dimensions": "_sizing",
    "SNIFF_BYTES": "_sniff",
    "sniff_format": "_sniff",
    "EXTENSION_ALIASES": "_types",
    "FORMATS": "_types",
    "MEDIA_TYPES": "_types",
    "SHORT_EDGE": "_types",
    "SIZES": "_types",
    "Format": "_types",
    "ImageInfo": "_types",
    "Rendition": "_types",
    "Size": "_types",
}
"""Every public name and the private module that defines it."""

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ENCODER_SETTINGS_VERSION",
    "EXTENSION_ALIASES",
    "Effort",
    "FORMATS",
    "Format",
    "ImageInfo",
    "ImageTooLarge",
    "MEDIA_TYPES",
    "REFINABLE_FORMATS",
    "Rendition",
    "SAVE_SUFFIX",
    "SHORT_EDGE",
    "SIZES",
    "SNIFF_BYTES",
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'transformer' has no attribute {name!r}")
    value = getattr(import_module(f"transformer.{home}"), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
