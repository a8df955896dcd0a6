"""The TurboJPEG decode path (transformer._turbojpeg) against libvips' own JPEG decode."""

from __future__ import annotations

import math

import pytest
import pyvips

from tests.transformer import sample_images as samples
from transformer import _pipeline, transform
from transformer._probe import read_header
from transformer._sizing import jpeg_shrink_on_load, target_dimensions
from transformer._turbojpeg import MAX_DECODED_BYTES, decode_scaled, decoded_size


def pixels(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


@pytest.mark.parametrize(("size", "shrink", "expected"), [
    ((3840, 2400), 2, (1920, 1200)),
    ((5640, 3172), 8, (705, 397)),   # libjpeg rounds scaled sizes up
    ((1001, 999), 4, (251, 250)),
    ((500, 400), 1, (500, 400)),
])
def test_decoded_size_rounds_up_as_libjpeg_does(size: tuple[int, int], shrink: int,
                                                expected: tuple[int, int]) -> None:
    assert decoded_size(*size, shrink) == expected


def test_corpus_jpegs_take_the_turbo_path_at_libvips_scale(corpus) -> None:
    jpegs = [image for image in corpus if image.format == "jpeg"]
    assert jpegs
    for image in jpegs:
        assert read_header(image.data).decoder == "turbojpeg", image.path.name
        for size in ("s", "m", "l"):
            target = target_dimensions(image.width, image.height, size)  # type: ignore[arg-type]
            shrink = jpeg_shrink_on_load(image.width, image.height, target)
            decoded = decode_scaled(image.data, shrink, orientation=1, icc_profile=None)
            assert decoded is not None
            assert (decoded.width, decoded.height) == decoded_size(image.width, image.height,
                                                                   shrink)


def psnr(a: pyvips.Image, b: pyvips.Image) -> float:
    difference = a.cast("float") - b.cast("float")
    mse = (difference * difference).avg()
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


@pytest.mark.parametrize("size", ["s", "m", "l"])
def test_renditions_are_the_ones_libvips_decoding_gives(corpus, size: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pixel for pixel, except where libjpeg's rounded-up last row makes the decode one row
    taller than libvips' (then as close to a full-size lanczos3 reference as libvips' is)."""
    jpegs = [image for image in corpus if image.format == "jpeg"]
    turbo = {image.path: transform(image.data, size, "png", effort="fast")  # type: ignore[arg-type]
             for image in jpegs}
    monkeypatch.setattr(_pipeline, "decode_scaled", lambda *args, **kwargs: None)
    for image in jpegs:
        libvips = transform(image.data, size, "png", effort="fast")  # type: ignore[arg-type]
        ours = turbo[image.path]
        target = target_dimensions(image.width, image.height, size)  # type: ignore[arg-type]
        assert (ours.width, ours.height) == (libvips.width, libvips.height) == target
        shrink = jpeg_shrink_on_load(image.width, image.height, target)
        if image.width % shrink == 0 and image.height % shrink == 0:
            assert ours.data == libvips.data, image.path.name
            continue
        full = pyvips.Image.new_from_buffer(image.data, "")
        reference = full.resize(target[0] / full.width, vscale=target[1] / full.height,
                                kernel="lanczos3")
        ours_psnr, libvips_psnr = (psnr(pixels(r.data), reference) for r in (ours, libvips))
        assert ours_psnr >= libvips_psnr - 0.5, (image.path.name, ours_psnr, libvips_psnr)


@pytest.mark.parametrize("size", ["s", "m", "l"])
def test_final_effort_decodes_as_close_to_the_original_as_libvips(
        corpus, size: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final effort's larger decode scales (``keep_detail``): TurboJPEG's and libvips'
    scaled IDCTs may differ in the last bit there, so closeness to a full-size lanczos3
    reference is what counts, and both must be closer than the fast effort's decode."""
    jpegs = [image for image in corpus if image.format == "jpeg"]
    turbo = {image.path: transform(image.data, size, "png") for image in jpegs}  # type: ignore[arg-type]
    fast = {image.path: transform(image.data, size, "png", effort="fast")  # type: ignore[arg-type]
            for image in jpegs}
    monkeypatch.setattr(_pipeline, "decode_scaled", lambda *args, **kwargs: None)
    for image in jpegs:
        libvips = transform(image.data, size, "png")  # type: ignore[arg-type]
        ours = turbo[image.path]
        target = target_dimensions(image.width, image.height, size)  # type: ignore[arg-type]
        assert (ours.width, ours.height) == (libvips.width, libvips.height) == target
        full = pyvips.Image.new_from_buffer(image.data, "")
        reference = full.resize(target[0] / full.width, vscale=target[1] / full.height,
                                kernel="lanczos3")
        ours_psnr, libvips_psnr, fast_psnr = (psnr(pixels(r.data), reference)
                                              for r in (ours, libvips, fast[image.path]))
        assert ours_psnr >= libvips_psnr - 0.5, (image.path.name, ours_psnr, libvips_psnr)
        assert ours_psnr >= fast_psnr - 0.01, (image.path.name, ours_psnr, fast_psnr)


def test_grey_jpeg_stays_grey_and_cmyk_goes_to_libvips() -> None:
    grey = samples.flat(800, 600, (90, 90, 90)).colourspace("b-w").jpegsave_buffer(Q=95)
    assert read_header(grey).decoder == "turbojpeg"
    rendition = transform(grey, "s", "jpeg")
    out = pyvips.Image.new_from_buffer(rendition.data, "")
    assert (rendition.width, rendition.height) == (427, 320)
    assert out.bands == 1 and abs(out.avg() - 90) < 3
    assert read_header(samples.cmyk_jpeg()).decoder == "vips"


def test_large_decodes_and_unreadable_data_go_to_libvips() -> None:
    big = samples.flat(3000, 2000, (30, 120, 60)).jpegsave_buffer(Q=80)
    assert MAX_DECODED_BYTES < 3000 * 2000 * 3
    assert decode_scaled(big, 1, orientation=1, icc_profile=None) is None  # full size
    assert decode_scaled(big, 4, orientation=1, icc_profile=None) is not None
    assert transform(big, None, "jpeg").width == 3000  # streamed by libvips instead
    corrupt = big[:600] + bytes(len(big) - 600)
    assert decode_scaled(corrupt, 4, orientation=1, icc_profile=None) is None


def test_orientation_and_profile_are_carried_over() -> None:
    data = samples.p3_profiled_jpeg(samples.GREEN)
    header = read_header(data)
    assert header.icc_profile
    decoded = decode_scaled(data, 2, orientation=6, icc_profile=header.icc_profile)
    assert decoded is not None
    assert decoded.get("orientation") == 6
    assert bytes(decoded.get("icc-profile-data")) == header.icc_profile
