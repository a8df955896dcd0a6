from __future__ import annotations

import pytest
import pyvips

from transformer import (
    ENCODER_SETTINGS_VERSION,
    FORMATS,
    SAVE_SUFFIX,
    encoder_options,
    sniff_format,
)
from transformer._encoder_settings import QUALITY


def test_version_is_a_short_token() -> None:
    assert ENCODER_SETTINGS_VERSION
    assert ENCODER_SETTINGS_VERSION.isascii() and " " not in ENCODER_SETTINGS_VERSION


@pytest.mark.parametrize("fmt", FORMATS)
def test_options_are_accepted_by_libvips(fmt: str) -> None:
    image = pyvips.Image.black(64, 48, bands=3).copy(interpretation="srgb") + 100
    data = image.cast("uchar").write_to_buffer(SAVE_SUFFIX[fmt], **encoder_options(fmt))  # type: ignore[index, arg-type]
    assert sniff_format(data) == fmt


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_lossy_formats_use_the_common_quality(fmt: str) -> None:
    assert encoder_options(fmt)["Q"] == QUALITY == 80  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_metadata_is_kept(fmt: str) -> None:
    assert encoder_options(fmt)["keep"] == pyvips.ForeignKeep.NONE  # type: ignore[arg-type]


def test_unknown_format() -> None:
    with pytest.raises(ValueError):
        encoder_options("gif")  # type: ignore[arg-type]
