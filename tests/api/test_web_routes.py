"""The files of the API role: the upload page, the library, the API docs (with the vendored
Swagger UI), their scripts and styles, the icon, /openapi.yaml."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from collections.abc import Callable, Iterator

import pytest

from api.routes.pages import ASSETS, PAGES, WEB_DIR, is_not_modified, page_security_policy
from api.settings import Settings
from tests.conftest import ROOT, RunningServer, running_server

EXPECTED = {
    "/": "text/html",
    "/library": "text/html",
    "/api": "text/html",
    "/common.js": "text/javascript",
    "/upload.js": "text/javascript",
    "/upload.css": "text/css",
    "/library.js": "text/javascript",
    "/library.css": "text/css",
    "/api.js": "text/javascript",
    "/api.css": "text/css",
    "/swagger-ui-bundle.js": "text/javascript",
    "/swagger-ui.css": "text/css",
    "/favicon.ico": "image/x-icon",
    "/openapi.yaml": "application/yaml",
}
OUR_SCRIPTS_AND_STYLES = ["common.js", "upload.js", "upload.css", "library.js", "library.css",
                          "api.js", "api.css"]


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
        for path in PAGES:
            page = http.get(path)
            assert "script-src 'self'" in page.headers["content-security-policy"], path
            assert "<title>imgpro" in page.text, path
        assert set(EXPECTED) == {*PAGES, *ASSETS, "/favicon.ico", "/openapi.yaml"}


def test_pages_use_no_external_assets() -> None:
    """Everything the pages load is served by imgpro itself: no CDN fonts, scripts or styles,
    and every file they name is one we serve."""
    for page in PAGES.values():
        html = (WEB_DIR / page).read_text()
        references = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert references and all(ref.startswith("/") and not ref.startswith("//")
                                  for ref in references), (page, references)
        loaded = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]*)"', html)
        assert set(loaded) <= {*ASSETS, "/favicon.ico"}, (page, loaded)
    for name in OUR_SCRIPTS_AND_STYLES:
        text = (WEB_DIR / name).read_text()
        assert not re.search(r"https?://|url\(", text), name


def test_vendored_swagger_ui_is_unchanged() -> None:
    """api/web/swagger-ui/ holds swagger-ui-dist's files byte for byte: the sums its README
    lists (taken from the npm package) must match, so an edit by hand is caught."""
    folder = WEB_DIR / "swagger-ui"
    listed = dict(re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", (folder / "README.md").read_text(),
                             re.MULTILINE))
    assert set(listed) == {p.name for p in folder.iterdir() if p.name != "README.md"}
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_package_data_ships_every_web_file() -> None:
    """``pip install .`` (not only an editable install) must carry every served file: each file
    under api/web/ matches a package-data pattern of the api package."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["api"]
    for path in WEB_DIR.rglob("*"):
        if path.is_file():
            folder, _, name = path.relative_to(WEB_DIR.parent).as_posix().rpartition("/")
            assert any(pattern.rpartition("/")[0] == folder
                       and fnmatch.fnmatch(name, pattern.rpartition("/")[2])
                       for pattern in patterns), (folder, name)


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
        for path in ("/", "/library", "/api", "/swagger-ui-bundle.js", "/openapi.yaml"):
            assert http.get(path).status_code == 404, path
