from __future__ import annotations

import pytest

from transformer.origin.errors import CdnError
from transformer.origin.request import parse_request, resized_stand_in, unescaped_location


@pytest.mark.parametrize(
    ("path", "query", "kind", "size"),
    [
        ("/t/abc.jpg", b"", "jpeg", None),
        ("/t/abc.JPEG", b"size=s", "jpeg", "s"),
        ("/team_1/a-b.webp", b"size=m", "webp", "m"),
        ("/t/abc.avif", b"size=l&v=3", "avif", "l"),
        ("/t/abc.avif", b"size=l&size=l", "avif", "l"),
        ("/t/abc.png", b"size=", "png", None),
        ("/t/abc.gif", b"", "gif", None),
        ("/t/abc.tif", b"", "tiff", None),
    ],
)
def test_valid(path: str, query: bytes, kind: str, size: str | None) -> None:
    request = parse_request(path, query)
    assert (request.kind, request.size) == (kind, size)
    assert request.key("v1").startswith(f"{request.team_hash}/{request.uid}/")


@pytest.mark.parametrize(
    ("path", "query", "status", "code"),
    [
        ("/t/abc", b"", 404, "not_found"),
        ("/t/a/b.jpg", b"", 404, "not_found"),
        ("/t/../etc.jpg", b"", 404, "not_found"),
        ("/t/abc.exe", b"", 400, "unsupported_format"),
        ("/t/abc.jpg", b"size=xl", 422, "validation_error"),
        ("/t/abc.jpg", b"size=S", 422, "validation_error"),
        ("/t/abc.jpg", b"size=m&size=l", 422, "validation_error"),
        ("/t/abc.jpg", b"size=&size=s", 422, "validation_error"),
    ],
)
def test_invalid(path: str, query: bytes, status: int, code: str) -> None:
    with pytest.raises(CdnError) as info:
        parse_request(path, query)
    assert (info.value.status, info.value.code) == (status, code)


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        ("/t/abc.gif", b"size=m", "/t/abc.webp?size=m"),
        ("/t/abc.svg", b"size=s", "/t/abc.webp?size=s"),
        ("/t/abc.TIF", b"size=l", "/t/abc.webp?size=l"),
        ("/t/abc.heic", b"size=m", "/t/abc.webp?size=m"),
        ("/t/abc.bmp", b"size=m", "/t/abc.webp?size=m"),
        ("/t/abc.gif", b"", None),
        ("/t/abc.jpg", b"size=m", None),
    ],
)
def test_resized_stand_in(path: str, query: bytes, location: str | None) -> None:
    assert resized_stand_in(parse_request(path, query)) == location


def test_keys_differ_by_size_format_and_version() -> None:
    keys = {
        parse_request(p, q).key(v)
        for p, q, v in [("/t/a.jpg", b"size=s", "1"), ("/t/a.jpeg", b"size=m", "1"),
                        ("/t/a.webp", b"size=s", "1"), ("/t/a.jpg", b"size=s", "2")]
    }
    assert len(keys) == 4
    assert parse_request("/t/a.jpg", b"").key("1") == parse_request("/t/a.jpeg", b"").key("1")


@pytest.mark.parametrize(
    ("path", "raw", "query", "location"),
    [
        ("/t/abc.jpg", b"/t/%61bc.jpg", b"", "/t/abc.jpg"),
        ("/t/abc.jpg", b"/%74/abc%2Ejpg", b"size=m", "/t/abc.jpg?size=m"),
        ("/t/abc.jpg", b"/t/abc.%6Apg", b"size=%6D&v=1", "/t/abc.jpg?size=m"),
    ],
)
def test_escaped_spellings_redirect_to_the_plain_one(path: str, raw: bytes, query: bytes,
                                                     location: str) -> None:
    assert unescaped_location(path, raw, query) == location


@pytest.mark.parametrize(
    ("path", "raw", "query", "status"),
    [
        ("/t/abc.jpg", b"/t%2Fabc.jpg", b"", 404),  # an escaped slash separates nothing
        ("/t/abc.jpg", b"/t%2fabc.jpg", b"", 404),
        ("/t/a/b.jpg", b"/t/a%2Fb.jpg", b"", 404),
        ("/t/abc.jpg", b"/t/%61bc.jpg", b"size=xl", 422),
    ],
)
def test_escaped_spellings_that_name_no_image(path: str, raw: bytes, query: bytes,
                                              status: int) -> None:
    with pytest.raises(CdnError) as info:
        unescaped_location(path, raw, query)
    assert info.value.status == status
