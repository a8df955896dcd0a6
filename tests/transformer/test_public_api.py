"""The curated public surface: what ``import transformer`` offers, and nothing by accident.

As httpx's ``test_exported_members.py``: every public name of the package is listed in
``__all__`` and every listed name exists, so a helper cannot leak out unnoticed and a removed
name cannot linger in the list.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import transformer

EXPECTED = {
    # the two entry points and the process-wide set-up
    "transform", "probe", "probe_file", "configure", "sniff_format",
    # errors
    "TransformError", "UnsupportedImage", "ImageTooLarge", "TransformTimeout",
    # vocabulary
    "Size", "Format", "SIZES", "FORMATS", "SHORT_EDGE", "MEDIA_TYPES", "EXTENSION_ALIASES",
    "ImageInfo", "Rendition", "target_dimensions", "SNIFF_BYTES", "DEFAULT_MAX_PIXELS",
    # encoder settings (the cache keys carry the version)
    "ENCODER_SETTINGS_VERSION", "SAVE_SUFFIX", "encoder_options", "Effort",
    "REFINABLE_FORMATS",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(transformer.__all__) == EXPECTED
    assert len(set(transformer.__all__)) == len(transformer.__all__)


def test_every_public_name_is_in_all() -> None:
    for name in transformer.__all__:  # load them all, then look at what the module holds
        getattr(transformer, name)
    public = {name for name in dir(transformer) if not name.startswith("_")
              and not isinstance(getattr(transformer, name), types.ModuleType)
              and name not in ("annotations", "import_module", "TYPE_CHECKING", "Any")}
    assert public == set(transformer.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'transfrom'"):
        transformer.transfrom  # type: ignore[attr-defined]  # noqa: B018


def test_light_names_do_not_load_libvips() -> None:
    """The vocabulary, the errors and sniffing: what the client commands and the serve
    supervisor take from the library, without its decoders."""
    code = ("import sys; from transformer import FORMATS, TransformError, sniff_format; "
            "print('pyvips' in sys.modules, 'PIL' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.split() == ["False", "False"]


def test_every_name_has_a_home() -> None:
    assert set(transformer._HOMES) == set(transformer.__all__)


def test_listed_names_exist() -> None:
    for name in transformer.__all__:
        assert hasattr(transformer, name), name


def test_error_tree() -> None:
    for error in (transformer.UnsupportedImage, transformer.ImageTooLarge,
                  transformer.TransformTimeout):
        assert issubclass(error, transformer.TransformError)
    assert transformer.ImageTooLarge.code == "image_too_large"
    assert transformer.TransformTimeout.status == 503
