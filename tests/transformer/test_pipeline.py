"""``transform`` over the corpus and every input format: geometry, pixels, format, metadata."""

from __future__ import annotations

import pytest
import pyvips

from tests.transformer import sample_images as samples
from transformer import FORMATS, SHORT_EDGE, SIZES, Rendition, _pipeline, sniff_format, transform
from transformer._pipeline import PIPELINE


def decoded(rendition: Rendition) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(rendition.data, "")


def colour_at(rendition: Rendition, x: int, y: int) -> list[float]:
    """Mean colour of a 5x5 patch, RGB (alpha dropped), so encoder noise averages out."""
    image = decoded(rendition)
    if image.bands in (2, 4):
        image = image.extract_band(0, n=image.bands - 1)
    if image.bands == 1:
        image = image.bandjoin([image, image])
    patch = image.crop(max(0, x - 2), max(0, y - 2), 5, 5)
    return [patch.extract_band(b).avg() for b in range(3)]


def assert_colour(actual: list[float], expected: tuple[int, ...], tolerance: float = 12) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False)), \
        f"{actual} is not close to {expected}"


def assert_rendition(rendition: Rendition, fmt: str, width: int, height: int) -> None:
    assert rendition.format == fmt
    assert sniff_format(rendition.data[:1024]) == fmt
    assert (rendition.width, rendition.height) == (width, height)
    image = decoded(rendition)
    assert image.width == width
    assert image.height == height


def test_pipeline_is_an_ordered_list_of_named_steps() -> None:
    names = [step.__name__ for step in PIPELINE]
    assert names.index("read_header") < names.index("refuse_oversized") \
        < names.index("load_and_shrink") < names.index("encode")


@pytest.mark.parametrize("size", SIZES)
def test_corpus_short_edge_exact_aspect_kept(corpus, size: str) -> None:
    for image in corpus:
        rendition = transform(image.data, size, "jpeg")  # type: ignore[arg-type]
        target = SHORT_EDGE[size]  # type: ignore[index]
        short, long = min(image.width, image.height), max(image.width, image.height)
        expected_short = min(target, short)
        out_short = min(rendition.width, rendition.height)
        out_long = max(rendition.width, rendition.height)
        assert out_short == expected_short, image.path.name
        assert abs(out_long - long * expected_short / short) <= 1, image.path.name
        assert (rendition.width >= rendition.height) == (image.width >= image.height)
        assert sniff_format(rendition.data[:1024]) == "jpeg"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_output_format(corpus, fmt: str) -> None:
    image = min(corpus, key=lambda i: i.bytes)
    rendition = transform(image.data, "s", fmt)  # type: ignore[arg-type]
    expected = (round(image.width * 320 / image.height), 320) if image.width >= image.height \
        else (320, round(image.height * 320 / image.width))
    assert_rendition(rendition, fmt, *expected)
    assert rendition.media_type == f"image/{fmt}"


def test_no_size_keeps_original_dimensions(corpus) -> None:
    image = min(corpus, key=lambda i: i.width * i.height)
    rendition = transform(image.data, None, "jpeg")
    assert (rendition.width, rendition.height) == (image.width, image.height)


def test_small_images_are_never_upscaled() -> None:
    rendition = transform(samples.jpeg(200, 100), "l", "png")
    assert_rendition(rendition, "png", 200, 100)


@pytest.mark.parametrize(
    ("name", "make", "colour"),
    [
        ("jpeg", samples.jpeg, samples.RED),
        ("png", samples.png, samples.RED),
        ("gif", samples.gif, samples.RED),
        ("tiff", samples.tiff, samples.RED),
        ("bmp", samples.bmp, samples.RED),
        ("heic-hevc", samples.heic_hevc, samples.RED),
        ("avif-av1", samples.avif, samples.RED),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_input_format(name: str, make, colour, fmt: str) -> None:
    rendition = transform(make(), "s", fmt)
    assert_rendition(rendition, fmt, 400, 300)  # short edge 300 < 320: not upscaled
    assert_colour(colour_at(rendition, 200, 150), colour)


def test_svg_is_rasterised_at_the_target_size() -> None:
    rendition = transform(samples.svg(1000, 500), "s", "png")
    assert_rendition(rendition, "png", 640, 320)
    assert_colour(colour_at(rendition, 320, 160), samples.RED)
    original = transform(samples.svg(1000, 500), None, "jpeg")
    assert (original.width, original.height) == (1000, 500)


def test_svg_rasterisation_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pipeline, "SVG_MAX_RASTER_PIXELS", 250_000)
    rendition = transform(samples.svg(9000, 4500), None, "jpeg")
    assert rendition.width * rendition.height <= 250_000
    assert (rendition.width, rendition.height) == (707, 353)


def test_exif_orientation_is_applied() -> None:
    rendition = transform(samples.exif_rotated_jpeg(6), None, "png")
    assert_rendition(rendition, "png", 300, 400)
    assert_colour(colour_at(rendition, 150, 50), samples.RED)  # stored left -> displayed top
    assert_colour(colour_at(rendition, 150, 350), samples.BLUE)
    assert "orientation" not in decoded(rendition).get_fields() or \
        decoded(rendition).get("orientation") == 1


def test_exif_orientation_with_resize() -> None:
    rendition = transform(samples.exif_rotated_jpeg(8), "s", "jpeg")
    # 8: rotate 270 clockwise -> displayed 300x400, stored left half ends up at the bottom
    assert_rendition(rendition, "jpeg", 300, 400)
    assert_colour(colour_at(rendition, 150, 350), samples.RED)


def test_icc_profile_is_converted_to_srgb() -> None:
    data = samples.p3_profiled_jpeg(samples.GREEN)
    untagged = pyvips.Image.new_from_buffer(data, "")
    naive = [untagged.extract_band(b).avg() for b in range(3)]
    assert abs(naive[0] - samples.GREEN[0]) > 30  # shown without colour management: wrong
    for fmt in FORMATS:
        rendition = transform(data, "s", fmt)  # type: ignore[arg-type]
        assert_colour(colour_at(rendition, 100, 50), samples.GREEN, tolerance=8)
        assert "icc-profile-data" not in decoded(rendition).get_fields()


def test_broken_icc_profile_is_taken_as_srgb() -> None:
    data = samples.jpeg_with_broken_icc(samples.GREEN)
    assert "icc-profile-data" in pyvips.Image.new_from_buffer(data, "").get_fields()
    rendition = transform(data, "s", "webp")
    assert_colour(colour_at(rendition, 100, 50), samples.GREEN, tolerance=8)


IN_CMYK_GAMUT = (60, 140, 80)
"""A muted green that survives sRGB -> CMYK -> sRGB within a few levels (saturated ones don't)."""


@pytest.mark.parametrize("make", [samples.cmyk_tiff, lambda c: samples.cmyk_tiff(c, True),
                                  samples.cmyk_jpeg])
@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_cmyk_becomes_srgb(make, fmt: str) -> None:
    rendition = transform(make(IN_CMYK_GAMUT), None, fmt)  # type: ignore[arg-type]
    image = decoded(rendition)
    assert image.bands == 3
    assert image.interpretation == "srgb"
    assert_colour(colour_at(rendition, 100, 50), IN_CMYK_GAMUT, tolerance=12)


@pytest.mark.parametrize("make", [samples.rgb16_tiff, samples.rgb16_png])
@pytest.mark.parametrize("fmt", ["png", "avif", "jpeg"])
def test_16_bit_becomes_8_bit_srgb(make, fmt: str) -> None:
    rendition = transform(make(samples.BLUE), "s", fmt)  # type: ignore[arg-type]
    image = decoded(rendition)
    if fmt == "png":
        assert image.format == "uchar"
    assert_colour(colour_at(rendition, 150, 100), samples.BLUE)


@pytest.mark.parametrize("fmt", FORMATS)
def test_grey_16_bit(fmt: str) -> None:
    rendition = transform(samples.grey16_png(128), "s", fmt)  # type: ignore[arg-type]
    assert_colour(colour_at(rendition, 150, 100), (128, 128, 128), tolerance=6)


def test_alpha_is_flattened_on_white_for_jpeg() -> None:
    transparent = samples.png(colour=(0, 0, 0, 0))
    jpeg = transform(transparent, "s", "jpeg")
    assert decoded(jpeg).bands == 3
    assert_colour(colour_at(jpeg, 200, 150), (255, 255, 255), tolerance=3)
    for fmt in ("png", "webp", "avif"):
        kept = decoded(transform(transparent, "s", fmt))  # type: ignore[arg-type]
        assert kept.hasalpha(), fmt
        assert kept.extract_band(kept.bands - 1).max() == 0, fmt


@pytest.mark.parametrize("make", [samples.animated_gif, samples.animated_webp])
def test_animation_kept_for_webp(make) -> None:
    rendition = transform(make(), "s", "webp")
    assert (rendition.width, rendition.height) == (400, 300)
    frames = pyvips.Image.new_from_buffer(rendition.data, "n=-1")
    assert frames.get("n-pages") == 3
    assert frames.get("page-height") == 300
    for index, colour in enumerate((samples.RED, samples.GREEN, samples.BLUE)):
        page = frames.crop(0, index * 300, 400, 300)
        assert_colour([page.extract_band(b).avg() for b in range(3)], colour)


def test_animation_size_math_applies_per_frame() -> None:
    from PIL import Image

    frames = [Image.new("RGB", (800, 600), c) for c in (samples.RED, samples.GREEN)]
    data = samples.pillow_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                duration=[100, 100], loop=0)
    rendition = transform(data, "s", "webp")
    assert (rendition.width, rendition.height) == (427, 320)
    out = pyvips.Image.new_from_buffer(rendition.data, "n=-1")
    assert (out.width, out.height, out.get("page-height"), out.get("n-pages")) == (427, 640, 320, 2)


@pytest.mark.parametrize("make", [samples.animated_gif, samples.animated_webp])
@pytest.mark.parametrize("fmt", ["jpeg", "png", "avif"])
def test_animation_first_frame_for_other_formats(make, fmt: str) -> None:
    rendition = transform(make(), "s", fmt)  # type: ignore[arg-type]
    assert_rendition(rendition, fmt, 400, 300)
    assert_colour(colour_at(rendition, 200, 150), samples.RED)


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_is_stripped(fmt: str) -> None:
    rendition = transform(samples.jpeg_with_exif(), "s", fmt)  # type: ignore[arg-type]
    fields = set(decoded(rendition).get_fields())
    assert not fields & {"exif-data", "xmp-data", "iptc-data", "icc-profile-data"}
    assert b"Exif" not in rendition.data
    assert b"TestCamera" not in rendition.data


def test_corpus_exif_is_not_carried_into_renditions(corpus) -> None:
    with_exif = [i for i in corpus if b"Exif" in i.data[:65536]]
    assert with_exif, "the corpus has EXIF-tagged photos"
    for image in with_exif[:3]:
        rendition = transform(image.data, "s", "jpeg")
        assert b"Exif" not in rendition.data


def test_jpeg_decoded_at_reduced_scale_keeps_orientation_and_exact_size() -> None:
    """The fast shrink-on-load path (1/4 scale here) still applies EXIF orientation."""
    stored = (pyvips.Image.black(3000, 2000, bands=3) + [200, 30, 30]).cast("uchar")
    stored = stored.draw_rect([10, 200, 10], 0, 0, 600, 300, fill=True).copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)
    rendition = transform(stored.write_to_buffer(".jpg", Q=90), "s", "png")
    out = decoded(rendition)
    assert (rendition.width, rendition.height) == (out.width, out.height) == (320, 480)
    # Orientation 6 turns the stored top-left corner into the displayed top-right one.
    assert out.getpoint(out.width - 4, 4)[1] > 150
    assert out.getpoint(4, 4)[0] > 150
