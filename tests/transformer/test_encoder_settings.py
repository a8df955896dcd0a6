from __future__ import annotations

import pytest
import pyvips

from transformer import (
    ENCODER_SETTINGS_VERSION,
    FORMATS,
    SAVE_SUFFIX,
    encoder_options,
    sniff_format,
    transform,
)
from transformer._encoder_settings import (
    DEFAULT_EFFORT,
    EFFORTS,
    SETTINGS,
    encoder_setting,
)
from transformer._pipeline import encode_image


def test_version_is_a_short_token() -> None:
    assert ENCODER_SETTINGS_VERSION
    assert ENCODER_SETTINGS_VERSION.isascii() and " " not in ENCODER_SETTINGS_VERSION


def _sample() -> pyvips.Image:
    image = pyvips.Image.black(64, 48, bands=3).copy(interpretation="srgb") + 100
    return image.cast("uchar").copy(interpretation="srgb")


@pytest.mark.parametrize("effort", EFFORTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_options_are_accepted_by_libvips(fmt: str, effort: str) -> None:
    data = _sample().write_to_buffer(SAVE_SUFFIX[fmt], **encoder_options(fmt, effort))  # type: ignore[index, arg-type]
    assert sniff_format(data) == fmt


@pytest.mark.parametrize("effort", EFFORTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_setting_encodes(fmt: str, effort: str) -> None:
    data = encode_image(_sample(), fmt, encoder_setting(fmt, effort))  # type: ignore[arg-type]
    assert sniff_format(data) == fmt


def test_every_format_has_both_efforts() -> None:
    assert set(SETTINGS) == {(fmt, effort) for fmt in FORMATS for effort in EFFORTS}
    assert DEFAULT_EFFORT == "final"


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_lossy_settings_have_a_quality(fmt: str) -> None:
    # Each setting reaches the same SSIMULACRA2 score at its own q (docs/bench-quality.md).
    for effort in EFFORTS:
        setting = encoder_setting(fmt, effort)  # type: ignore[arg-type]
        assert setting.quality is not None and 1 <= setting.quality <= 100
        assert encoder_options(fmt, effort)["Q"] == (  # type: ignore[arg-type]
            setting.fallback.quality if setting.fallback else setting.quality)


@pytest.mark.parametrize("effort", EFFORTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_no_metadata_is_kept(fmt: str, effort: str) -> None:
    assert encoder_options(fmt, effort)["keep"] == pyvips.ForeignKeep.NONE  # type: ignore[arg-type]


def test_unknown_format_or_effort() -> None:
    with pytest.raises(ValueError):
        encoder_options("gif")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encoder_setting("webp", "slow")  # type: ignore[arg-type]


def test_transform_takes_the_effort() -> None:
    data = _sample().write_to_buffer(".png")
    for effort in EFFORTS:
        assert sniff_format(transform(data, "s", "webp", effort=effort).data) == "webp"  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        transform(data, "s", "webp", effort="slow")  # type: ignore[arg-type]
