"""JPEG through jpegli, with libvips as the fallback: both paths, and what decides between them."""

from __future__ import annotations

import pytest
import pyvips

from tests.transformer import sample_images as samples
from transformer import _jpegli, transform
from transformer._encoder_settings import encoder_setting

pytestmark = pytest.mark.skipif(not _jpegli.available(), reason="pyjpegli wheel not importable")


def _decoded(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


def _by_jpegli(data: bytes) -> bool:
    """At effort "fast" jpegli writes baseline JPEG; the libvips fallback writes progressive."""
    return not _decoded(data).get("jpeg-multiscan")


def _fast(data: bytes, size: str | None = "s") -> bytes:
    return transform(data, size, "jpeg", effort="fast").data  # type: ignore[arg-type]


def _mean(data: bytes) -> list[float]:
    image = _decoded(data)
    return [image.extract_band(b).avg() for b in range(image.bands)]


def test_jpeg_settings_are_jpegli_with_a_libvips_fallback() -> None:
    for effort in ("fast", "final"):
        setting = encoder_setting("jpeg", effort)
        assert setting.encoder == "jpegli"
        assert setting.fallback is not None and setting.fallback.encoder == "libvips"
        assert setting.fallback.options["interlace"] is True  # what _by_jpegli tells apart
    assert not encoder_setting("jpeg", "fast").options.get("progressive")
    assert encoder_setting("jpeg", "final").options["progressive"] is True


def test_rgb_goes_through_jpegli() -> None:
    data = _fast(samples.jpeg(colour=samples.GREEN))
    assert _by_jpegli(data)
    image = _decoded(data)
    assert (image.width, image.height, image.bands) == (400, 300, 3)
    assert image.get("jpeg-chroma-subsample") == "4:2:0"
    assert all(abs(a - e) <= 4 for a, e in zip(_mean(data), samples.GREEN, strict=True))


def test_final_is_the_fast_encode_rewritten_losslessly() -> None:
    original = samples.pillow_bytes(samples.two_halves(600, 400), "PNG")
    fast = _fast(original)
    final = transform(original, "s", "jpeg").data
    assert _decoded(final).get("jpeg-multiscan")  # progressive
    assert len(final) < len(fast)
    assert (_decoded(final) - _decoded(fast)).abs().max() == 0  # the same pixels


def test_without_the_lossless_wheel_final_is_the_fast_encode(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_jpegli, "_lossless", None)
    original = samples.jpeg(colour=samples.BLUE)
    assert transform(original, "s", "jpeg").data == _fast(original)


def test_jpegli_renditions_declare_72_dpi() -> None:
    for data in (_fast(samples.png(colour=samples.BLUE)),
                 transform(samples.png(colour=samples.BLUE), "s", "jpeg").data):
        assert data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\0"
        image = _decoded(data)
        assert image.xres * 25.4 == pytest.approx(72) and image.yres * 25.4 == pytest.approx(72)


def test_greyscale_falls_back_to_libvips_and_stays_grey() -> None:
    data = _fast(samples.grey16_png(128))
    assert not _by_jpegli(data)
    assert _decoded(data).bands == 1
    assert abs(_mean(data)[0] - 128) <= 3


def test_a_failing_jpegli_falls_back_to_libvips(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        calls = 0

        @classmethod
        def encode(cls, *args: object, **kwargs: object) -> bytes:
            cls.calls += 1
            raise RuntimeError("jpegli failed")

    monkeypatch.setattr(_jpegli, "_pyjpegli", Broken)
    # 18 MB decoded: libvips decodes it with sequential access, which reads its source only
    # once, so the fallback must re-encode the pixels already computed (it would fail otherwise).
    data = _fast(samples.jpeg(3000, 2000, colour=samples.RED), None)
    assert Broken.calls == 1
    assert not _by_jpegli(data)
    assert (_decoded(data).width, _decoded(data).height) == (3000, 2000)
    assert all(abs(a - e) <= 6 for a, e in zip(_mean(data), samples.RED, strict=True))
    fallback = _decoded(data)  # the fallback still declares (or implies) 72 dpi
    assert fallback.xres * 25.4 == pytest.approx(72) and fallback.yres * 25.4 == pytest.approx(72)


def test_without_the_wheel_libvips_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_jpegli, "_pyjpegli", None)
    assert not _jpegli.available()
    assert not _by_jpegli(_fast(samples.jpeg(colour=samples.RED)))


def test_huge_renditions_stream_through_libvips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_jpegli, "MAX_PIXELS", 400 * 300 - 1)
    assert not _by_jpegli(_fast(samples.jpeg(), None))


def test_jfif_segment_added_once() -> None:
    baseline = _jpegli.encode(samples.flat(16, 16, samples.RED), 80)
    assert baseline is not None
    assert baseline.count(b"JFIF\0") == 1
    assert _jpegli.with_jfif_density(baseline) == baseline
    with pytest.raises(ValueError):
        _jpegli.with_jfif_density(b"not a jpeg")
    assert _jpegli.optimize_losslessly(b"not a jpeg either") == b"not a jpeg either"
