"""Bad input never crashes, hangs or decodes a bomb: every case ends in one TransformError."""

from __future__ import annotations

import os

import pytest
import pyvips

from tests.transformer import sample_images as samples
from transformer import (
    FORMATS,
    ImageTooLarge,
    TransformError,
    TransformTimeout,
    UnsupportedImage,
    _pipeline,
    transform,
)
from transformer._deadline import Deadline
from transformer._probe import read_header


def corpus_file(corpus, fmt: str) -> bytes:
    return min((i for i in corpus if i.format == fmt), key=lambda i: i.bytes).data


TRUNCATION_POINTS = (0.05, 0.5, 0.95, 0.999)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
@pytest.mark.parametrize("fraction", TRUNCATION_POINTS)
def test_truncated_corpus_files(corpus, fmt: str, fraction: float) -> None:
    data = corpus_file(corpus, fmt)
    with pytest.raises(UnsupportedImage):
        transform(data[: int(len(data) * fraction)], "s", "jpeg")


@pytest.mark.parametrize(
    "make", [samples.gif, samples.tiff, samples.heic_hevc, samples.avif, samples.bmp,
             samples.animated_gif, samples.animated_webp],
)
@pytest.mark.parametrize("fraction", (0.3, 0.7, 0.97))
def test_truncated_generated_files(make, fraction: float) -> None:
    data = make()
    cut = data[: int(len(data) * fraction)]
    for fmt in ("jpeg", "webp"):
        with pytest.raises(UnsupportedImage):
            transform(cut, "s", fmt)  # type: ignore[arg-type]


def test_gif_with_zero_padding_after_trailer_is_accepted() -> None:
    assert transform(samples.gif() + b"\0" * 16, "s", "png").width == 400


def test_truncated_svg() -> None:
    data = samples.svg()
    with pytest.raises(UnsupportedImage):
        transform(data[: len(data) // 2], "s", "png")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        os.urandom(4096),
        b"\xff\xd8\xff\xe0 this is a text file with a JPEG-like header\n" * 20,
        b"\x89PNG\r\n\x1a\n" + b"plain text after a PNG signature" * 10,
        b"GIF89a" + b"\x00" * 10,
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20,
        b"<svg xmlns='http://www.w3.org/2000/svg'><unclosed",
        b"BM" + b"\x00" * 100,
        b"%PDF-1.4 not an image we accept",
        b"1,2,3\n4,5,6\n",  # CSV: libvips could load it as an image; we must not
    ],
    ids=["empty", "random", "text-jpeg-header", "text-png-header", "short-gif", "empty-webp",
         "broken-svg", "zero-bmp", "pdf", "csv"],
)
def test_garbage_is_unsupported(data: bytes) -> None:
    for fmt in FORMATS:
        with pytest.raises(UnsupportedImage):
            transform(data, "s", fmt)


def test_corrupt_middle_of_jpeg(corpus) -> None:
    data = bytearray(corpus_file(corpus, "jpeg"))
    start = len(data) // 3
    data[start:start + 4096] = os.urandom(4096)
    try:
        rendition = transform(bytes(data), "s", "jpeg")
    except UnsupportedImage:
        return
    # libjpeg resynchronises on some damage without an error; the output must still be valid
    assert pyvips.Image.new_from_buffer(rendition.data, "").width == rendition.width


@pytest.mark.parametrize("make", [samples.png_declaring, samples.jpeg_declaring,
                                  samples.gif_declaring, samples.bmp_declaring,
                                  lambda w, h: samples.svg(w, h)],
                         ids=["png", "jpeg", "gif", "bmp", "svg"])
def test_declared_bombs_are_refused_before_decoding(make) -> None:
    bomb = make(50000, 50000)
    assert len(bomb) < 10_000
    for size in ("s", None):
        with pytest.raises(ImageTooLarge):
            transform(bomb, size, "jpeg")  # type: ignore[arg-type]


def test_pixel_limit_is_configurable() -> None:
    data = samples.jpeg(400, 300)
    with pytest.raises(ImageTooLarge):
        transform(data, "s", "jpeg", max_pixels=400 * 300 - 1)
    assert transform(data, "s", "jpeg", max_pixels=400 * 300).width == 400


def test_an_animation_over_the_limit_in_all_frames_gives_its_first_frame() -> None:
    data = samples.animated_gif()  # 3 frames of 400x300
    kept = transform(data, "s", "webp", max_pixels=3 * 400 * 300)
    assert pyvips.Image.new_from_buffer(kept.data, "", n=-1).get("n-pages") == 3
    still = transform(data, "s", "webp", max_pixels=2 * 400 * 300)
    assert pyvips.Image.new_from_buffer(still.data, "", n=-1).get_n_pages() == 1
    assert (still.width, still.height) == (400, 300)
    assert transform(data, "s", "png", max_pixels=2 * 400 * 300).height == 300
    # one frame over the limit is still refused
    with pytest.raises(ImageTooLarge):
        transform(data, "s", "webp", max_pixels=400 * 300 - 1)


def test_timeout_abandons_a_running_transform(corpus) -> None:
    biggest = max(corpus, key=lambda i: i.width * i.height).data
    with pytest.raises(TransformTimeout):
        transform(biggest, "l", "webp", timeout=0.02)
    # the library is still usable afterwards
    assert transform(samples.jpeg(), "s", "jpeg", timeout=30).width == 400


def test_waiting_for_decode_memory_counts_against_the_timeout() -> None:
    progressive = pyvips.Image.black(2100, 2000, bands=3).jpegsave_buffer(Q=50, interlace=True)
    budget = _pipeline.DECODE_MEMORY
    with budget.reserve(budget.capacity, Deadline(None)):  # someone holds all of it
        with pytest.raises(TransformTimeout):
            transform(progressive, "s", "jpeg", timeout=0.2)
        # streaming decodes (baseline JPEG) never wait for the budget
        baseline = pyvips.Image.black(2100, 2000, bands=3).jpegsave_buffer(Q=50)
        assert transform(baseline, "s", "jpeg", timeout=5).height == 320
    assert budget.reserved == 0
    assert transform(progressive, "s", "jpeg", timeout=30).height == 320


def test_a_big_svg_raster_waits_for_decode_memory() -> None:
    budget = _pipeline.DECODE_MEMORY
    with budget.reserve(budget.capacity, Deadline(None)):  # someone holds all of it
        with pytest.raises(TransformTimeout):  # 4000x2000 RGBA: 32 MB from its renderer
            transform(samples.svg(4000, 2000), None, "png", timeout=0.5)
        assert transform(samples.svg(4000, 2000), "s", "png", timeout=5).height == 320
    assert budget.reserved == 0


@pytest.mark.parametrize(("make", "streams"), [
    (lambda: pyvips.Image.black(300, 200, bands=3).jpegsave_buffer(Q=50), True),
    (lambda: pyvips.Image.black(300, 200, bands=3).jpegsave_buffer(Q=50, interlace=True), False),
    (lambda: pyvips.Image.black(300, 200, bands=3).pngsave_buffer(), True),
    (lambda: pyvips.Image.black(300, 200, bands=3).pngsave_buffer(interlace=True), False),
    (lambda: pyvips.Image.black(300, 200, bands=3).webpsave_buffer(Q=50), False),
], ids=["baseline-jpeg", "progressive-jpeg", "png", "interlaced-png", "webp"])
def test_which_decodes_reserve_memory(make, streams: bool) -> None:
    header = read_header(make())
    assert (header.buffered_bytes == 0) == streams
    if not streams:
        assert header.buffered_bytes >= 300 * 200 * 3


def test_unknown_output_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        transform(samples.jpeg(), "s", "gif")  # type: ignore[arg-type]


def test_every_error_is_a_transform_error() -> None:
    for error in (UnsupportedImage, ImageTooLarge, TransformTimeout):
        assert issubclass(error, TransformError)


def test_svg_cannot_pull_in_local_files_or_urls(corpus) -> None:
    photo = corpus[0].path
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
           f'width="400" height="300"><image width="400" height="300" '
           f'xlink:href="file://{photo}"/><image width="400" height="300" '
           f'href="http://127.0.0.1:9/x.png"/></svg>').encode()
    rendition = transform(svg, None, "png")
    image = pyvips.Image.new_from_buffer(rendition.data, "")
    assert image.hasalpha()
    assert image.extract_band(image.bands - 1).max() == 0  # nothing was drawn
