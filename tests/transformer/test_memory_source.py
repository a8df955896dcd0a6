"""libvips reads originals where they lie (``transformer._engine.load_from_memory`` and
``thumbnail_from_memory``), never from a copy: pyvips copies a buffer whole before ``*_buffer``
operations see it."""

from __future__ import annotations

import gc
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
import pyvips

from tests.transformer import sample_images
from transformer import probe, transform
from transformer._engine import ensure_initialised, load_from_memory, thumbnail_from_memory

SAMPLES = {
    "jpeg": sample_images.jpeg(),
    "cmyk-jpeg": sample_images.cmyk_jpeg(),  # libvips' own JPEG loader, at a shrink
    "png": sample_images.png(colour=(10, 20, 30, 128)),
    "grey16-png": sample_images.grey16_png(),
    "gif": sample_images.gif(),
    "animated-webp": sample_images.animated_webp(),
    "tiff": sample_images.cmyk_tiff(embed_profile=True),
    "avif": sample_images.avif(),
}


@pytest.fixture
def no_buffer_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("an original was handed to libvips as a buffer (a whole copy)")
    monkeypatch.setattr(pyvips.Image, "new_from_buffer", refused)
    monkeypatch.setattr(pyvips.Image, "thumbnail_buffer", refused)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_probe_and_transform_load_from_memory_sources(name: str, no_buffer_loads: None) -> None:
    data = SAMPLES[name]
    info = probe(data)
    for fmt in ("jpeg", "webp"):
        rendition = transform(data, "s", fmt, effort="fast")
        assert rendition.format == fmt and rendition.width <= info.width


def test_the_corpus_loads_from_memory_sources(corpus, no_buffer_loads: None) -> None:
    for image in corpus:
        rendition = transform(image.data, "s", "avif" if image.format == "png" else "webp",
                              effort="fast")
        assert min(rendition.width, rendition.height) == min(320, image.width, image.height)


def test_loaders_outside_the_allow_list_are_blocked_from_sources_too() -> None:
    ensure_initialised()
    with pytest.raises(pyvips.Error):
        load_from_memory(b"1,2,3\n4,5,6\n")  # csvload_source would accept this


def test_images_keep_their_original_alive_after_the_caller_drops_it() -> None:
    # pyvips does not keep a thumbnail_source's source alive; without the reference
    # thumbnail_from_memory adds, libvips read freed memory here ("Not a JPEG file").
    expected = sample_images.jpeg(colour=sample_images.GREEN)
    thumbnail = thumbnail_from_memory(bytearray(expected), 64).thumbnail_image(32)
    loaded = load_from_memory(bytearray(expected), access="sequential").thumbnail_image(32)
    gc.collect()
    bytearray(len(expected) * 4)  # reuse what was freed, if anything was
    for image in (thumbnail, loaded):
        red, green, blue = (round(value) for value in image.getpoint(10, 10)[:3])
        assert abs(red - 20) < 8 and abs(green - 200) < 8 and abs(blue - 40) < 8


PEAK_GROWTH = textwrap.dedent("""
    import sys
    from transformer import transform

    def status_kb(field):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

    large, small = (open(path, "rb").read() for path in sys.argv[1:3])
    size, fmt = (None if sys.argv[3] == "original" else sys.argv[3]), sys.argv[4]
    transform(small, "s", "webp", effort="fast")  # libvips' own start-up is not the question
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak RSS (VmHWM) to the RSS now, the original already read
    before = status_kb("VmRSS")
    transform(large, size, fmt, effort="fast")
    print((status_kb("VmHWM") - before) * 1024)
""")
"""Peak RSS one transform adds, from the kernel's high-water mark (``getrusage``'s maxrss would
carry the parent's peak across ``exec``)."""


def png_with_private_chunk(payload: int) -> bytes:
    """A small PNG carrying ``payload`` bytes in a private ancillary chunk, which decoders skip:
    a large original whose decode costs next to nothing, so that any copy of it shows."""
    small = sample_images.png()
    body = bytes(payload)
    chunk = (struct.pack(">I", payload) + b"prVt" + body
             + struct.pack(">I", zlib.crc32(b"prVt" + body)))
    return small[:-12] + chunk + small[-12:]  # before IEND


def test_a_large_original_is_not_copied(tmp_path: Path) -> None:
    # Through pyvips' buffer path the peak grew by the whole file (copied for the header, then
    # again for the decode): 68 MB here; from a memory source by about 1 MB.
    large, small = tmp_path / "large.png", tmp_path / "small.png"
    large.write_bytes(png_with_private_chunk(64 << 20))
    small.write_bytes(sample_images.png())
    assert probe(large.read_bytes()).width == 400
    assert peak_growth(large, small, "s", "webp") < (64 << 20) // 2


def test_a_jpeg_rendition_holds_its_pixels_once(tmp_path: Path) -> None:
    # An original-size JPEG rendition of 16 MP: 49 MB of pixels. They were computed into a
    # memory image and then copied into jpegli's buffer: here the peak grew by 136 MB; computed
    # straight into the buffer, by 87 MB (the rest is the decode and jpegli's own buffers).
    noise = pyvips.Image.gaussnoise(5120, 3200, mean=128, sigma=40).cast("uchar")
    image = noise.bandjoin([noise.rot180(), noise.fliphor()]).copy(interpretation="srgb")
    large, small = tmp_path / "large.jpg", tmp_path / "small.png"
    image.write_to_file(str(large), Q=85)
    small.write_bytes(sample_images.png())
    pixels = 5120 * 3200 * 3
    assert peak_growth(large, small, "original", "jpeg") < pixels * 11 // 5


def peak_growth(large: Path, small: Path, size: str, fmt: str) -> int:
    """Bytes one ``transform(large, size, fmt)`` adds to the peak RSS of a fresh process."""
    return int(subprocess.run([sys.executable, "-c", PEAK_GROWTH, str(large), str(small), size,
                               fmt], check=True, capture_output=True, text=True).stdout)
