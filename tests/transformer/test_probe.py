from __future__ import annotations

import pytest

from tests.transformer import sample_images as samples
from transformer import ImageInfo, ImageTooLarge, UnsupportedImage, probe


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (samples.jpeg, ImageInfo("jpeg", 400, 300)),
        (samples.png, ImageInfo("png", 400, 300)),
        (lambda: samples.png(colour=(1, 2, 3, 4)), ImageInfo("png", 400, 300, has_alpha=True)),
        (samples.gif, ImageInfo("gif", 400, 300)),
        # libvips decodes every animated GIF as RGBA: any frame may have transparency
        (samples.animated_gif, ImageInfo("gif", 400, 300, frames=3, has_alpha=True)),
        (samples.animated_webp, ImageInfo("webp", 400, 300, frames=3)),
        (samples.svg, ImageInfo("svg", 1000, 500, has_alpha=True)),
        (samples.heic_hevc, ImageInfo("heic", 400, 300)),
        (samples.avif, ImageInfo("avif", 400, 300)),
        (samples.tiff, ImageInfo("tiff", 400, 300)),
        (samples.bmp, ImageInfo("bmp", 400, 300)),
        (samples.exif_rotated_jpeg, ImageInfo("jpeg", 300, 400, orientation=6)),
        (lambda: samples.exif_rotated_jpeg(3), ImageInfo("jpeg", 400, 300, orientation=3)),
    ],
)
def test_probe_reads_headers(make, expected: ImageInfo) -> None:
    assert probe(make()) == expected


def test_probe_corpus_matches_manifest(corpus) -> None:
    for image in corpus:
        info = probe(image.data)
        assert (info.format, info.width, info.height) == (image.format, image.width, image.height)


@pytest.mark.parametrize("make", [samples.png_declaring, samples.jpeg_declaring,
                                  samples.gif_declaring, samples.bmp_declaring,
                                  lambda w, h: samples.svg(w, h)])
def test_probe_refuses_declared_bombs(make) -> None:
    bomb = make(50000, 50000)
    with pytest.raises(ImageTooLarge):
        probe(bomb, max_pixels=100_000_000)


def test_probe_without_limit_reports_declared_size() -> None:
    info = probe(samples.png_declaring(50000, 50000))
    assert (info.width, info.height) == (50000, 50000)


@pytest.mark.parametrize("data", [b"", b"hello world", b"\xff\xd8\xff" + b"not really" * 10,
                                  b"GIF89a", b"\x89PNG\r\n\x1a\n"])
def test_probe_rejects_non_images(data: bytes) -> None:
    with pytest.raises(UnsupportedImage):
        probe(data)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
@pytest.mark.parametrize("fraction", (0.3, 0.9, 0.999))
def test_probe_refuses_truncated_corpus_files(corpus, fmt: str, fraction: float) -> None:
    # Headers survive truncation: without the end-of-file checks these probed as whole images.
    data = next(i for i in corpus if i.format == fmt).data
    assert probe(data).format == fmt
    with pytest.raises(UnsupportedImage, match="truncated|not a readable"):
        probe(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("make", [samples.gif, samples.animated_gif, samples.bmp])
def test_probe_refuses_truncated_generated_files(make) -> None:
    data = make()
    probe(data)
    with pytest.raises(UnsupportedImage):
        probe(data[: int(len(data) * 0.9)])


def test_data_after_the_end_of_a_jpeg_is_allowed(corpus) -> None:
    # Motion Photos and some cameras append a video or a trailer after the JPEG's EOI.
    data = next(i for i in corpus if i.format == "jpeg").data
    assert probe(data + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40).format == "jpeg"
