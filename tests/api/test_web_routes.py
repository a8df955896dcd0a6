"""The files of the API role: the upload page, its script and style, the icon, /openapi.yaml."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from api.routes.pages import WEB_DIR, is_not_modified, page_security_policy
from api.settings import Settings
from tests.conftest import RunningServer, running_server

EXPECTED = {
    "/": "text/html",
    "/upload.js": "text/javascript",
    "/upload.css": "text/css",
    "/favicon.ico": "image/x-icon",
    "/openapi.yaml": "application/yaml",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("web") / "data") as running:
        yield running


def test_files_are_served_with_types_and_revalidation(server: RunningServer) -> None:
    with server.client() as http:
        for path, media_type in EXPECTED.items():
            response = http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(media_type), path
            assert response.headers["x-content-type-options"] == "nosniff"
            etag = response.headers["etag"]
            again = http.get(path, headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b"", path
            assert http.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
            head = http.head(path)
            assert head.status_code == 200 and head.content == b""
        page = http.get("/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<title>imgpro" in page.text


def test_page_uses_no_external_assets() -> None:
    """Everything the page loads is served by imgpro itself: no CDN fonts, scripts or styles."""
    html = (WEB_DIR / "index.html").read_text()
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references and all(ref.startswith("/") and not ref.startswith("//")
                              for ref in references), references
    for name in ("upload.js", "upload.css"):
        text = (WEB_DIR / name).read_text()
        assert not re.search(r"https?://|url\(", text), name


def test_cdn_origin_is_allowed_for_images() -> None:
    own = page_security_policy(Settings(port=8080))
    assert "img-src 'self' data: blob: http://127.0.0.1:8080;" in own
    cdn = page_security_policy(Settings(cdn_url="https://src.example.com/base/"))
    assert "img-src 'self' data: blob: https://src.example.com;" in cdn


@pytest.mark.parametrize(("header", "expected"), [
    (None, False), ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True),
    ('"abcd"', False),
])
def test_is_not_modified(header: str | None, expected: bool) -> None:
    assert is_not_modified(header, '"abc"') is expected


def test_cdn_role_serves_no_pages(server_factory: Callable[..., RunningServer]) -> None:
    cdn = server_factory(env={"IMGPRO_ROLE": "cdn"})
    with cdn.client() as http:
        assert http.get("/").status_code == 404
        assert http.get("/openapi.yaml").status_code == 404
