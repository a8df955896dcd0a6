from __future__ import annotations

import io

import pytest
from PIL import Image

from transformer import sniff_format


def pillow_bytes(fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, fmt, **save)
    return out.getvalue()


@pytest.mark.parametrize(
    ("pil_format", "expected"),
    [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"), ("WEBP", "webp"), ("TIFF", "tiff"),
     ("BMP", "bmp")],
)
def test_pillow_made_files(pil_format: str, expected: str) -> None:
    assert sniff_format(pillow_bytes(pil_format)) == expected


def test_heif_family_by_brand() -> None:
    import pillow_heif

    heif = pillow_heif.from_pillow(Image.new("RGB", (16, 16)))
    out = io.BytesIO()
    heif.save(out, format="HEIF")
    assert sniff_format(out.getvalue()) == "heic"
    avif_head = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf"
    assert sniff_format(avif_head) == "avif"
    assert sniff_format(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom") is None


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- made by hand -->\n<!DOCTYPE svg>\n<svg>',
        b"  \n<SVG width='1'>",
    ],
)
def test_svg(svg: bytes) -> None:
    assert sniff_format(svg) == "svg"


@pytest.mark.parametrize(
    "junk",
    [b"", b"\xff\xd8", b"hello world", b"<html><svg>", b"%PDF-1.7", b"RIFF\x00\x00\x00\x00WAVE",
     b"BM"],
)
def test_unrecognised(junk: bytes) -> None:
    assert sniff_format(junk) is None
