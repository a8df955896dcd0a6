"""``probe_file`` answers exactly what ``probe`` answers, for every format, from an open file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import pytest

import transformer
from tests.transformer import sample_images as samples

MAKERS: dict[str, Callable[[], bytes]] = {
    "jpeg": samples.jpeg, "png": samples.png, "exif-rotated": samples.exif_rotated_jpeg,
    "cmyk-jpeg": samples.cmyk_jpeg, "tiff": samples.tiff, "cmyk-tiff": samples.cmyk_tiff,
    "png16": samples.rgb16_png, "gif": samples.gif, "animated-gif": samples.animated_gif,
    "animated-webp": samples.animated_webp, "svg": samples.svg, "heic": samples.heic_hevc,
    "avif": samples.avif, "bmp": samples.bmp,
}


def in_file(data: bytes) -> tempfile._TemporaryFileWrapper[bytes]:
    handle = tempfile.NamedTemporaryFile()  # noqa: SIM115 - closed by the caller
    handle.write(data)
    handle.flush()
    return handle


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_probe_file_equals_probe(name: str) -> None:
    data = MAKERS[name]()
    with in_file(data) as handle:
        assert transformer.probe_file(handle.file) == transformer.probe(data)


@pytest.mark.parametrize("data", [
    samples.jpeg()[:-300],  # cut short
    samples.gif()[:-1],
    b"not an image at all" * 100,
    samples.png_declaring(20000, 20000),
], ids=["cut-jpeg", "cut-gif", "junk", "bomb"])
def test_probe_file_refuses_what_probe_refuses(data: bytes) -> None:
    with pytest.raises(transformer.TransformError) as from_bytes:
        transformer.probe(data, max_pixels=100_000_000)
    with in_file(data) as handle, pytest.raises(transformer.TransformError) as from_file:
        transformer.probe_file(handle.file, max_pixels=100_000_000)
    assert type(from_file.value) is type(from_bytes.value)


def test_gif_padding_after_the_trailer_is_allowed() -> None:
    data = samples.gif() + b"\0" * 10_000
    with in_file(data) as handle:
        assert transformer.probe_file(handle.file).format == "gif"


def test_probe_file_leaves_no_descriptor_open() -> None:
    data = samples.jpeg()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with in_file(data) as handle:
            transformer.probe_file(handle.file)
    assert len(os.listdir("/proc/self/fd")) == before


def test_empty_file_is_unsupported() -> None:
    with in_file(b"") as handle, pytest.raises(transformer.UnsupportedImage):
        transformer.probe_file(handle.file)
