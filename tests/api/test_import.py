"""POST /v1/import against a local HTTP server started by the test (loopback only)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.api.conftest import ApiServer, fresh_ip, tiny_png
from tests.conftest import CorpusImage, load_corpus

MB = 1024 * 1024
PHOTO = next((c for c in load_corpus() if c.format == "jpeg"), None)


class _Origin(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/photos/sunset.jpg")
            self.end_headers()
            return
        if self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                self.wfile.write(tiny_png())
                for _ in range(40):
                    self.wfile.write(b"\0" * MB)
            except OSError:
                pass  # the importer hung up once it had enough: expected
            return
        status, content_type, body = self.routes.get(self.path, (404, "text/plain", b"nope"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    photo = PHOTO.data if PHOTO else tiny_png()
    _Origin.routes = {
        "/photos/sunset.jpg": (200, "image/jpeg", photo),
        "/mislabelled": (200, "text/html", tiny_png()),
        "/page.html": (200, "text/html", b"<html><body>hi</body></html>"),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_import_every_field(api: ApiServer, origin: str, corpus: list[CorpusImage]) -> None:
    assert PHOTO is not None
    key = api.new_key()["key"]
    response = api.request("POST", "/v1/import", key=key, json={
        "url": f"{origin}/photos/sunset.jpg", "name": "Imported Photo", "tags": "landscape,nature",
        "namespace": "my-project", "public": True, "external_id": "ext-123",
        "metadata": {"source": "unsplash", "author": "Jane Doe"}, "camera": "x100",
    })
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Imported Photo"
    assert (body["width"], body["height"], body["filesize"]) == (PHOTO.width, PHOTO.height,
                                                                  PHOTO.bytes)
    assert body["extension"] == "jpeg"
    assert body["tags"] == ["landscape", "nature"]
    assert body["namespace"] == "my-project"
    assert body["external_id"] == "ext-123"
    assert (body["source"], body["author"], body["camera"]) == ("unsplash", "Jane Doe", "x100")
    assert response.headers["X-Monthly-Uploads-Used"] == "1"
    again = api.request("POST", "/v1/import", key=key,
                        json={"url": f"{origin}/photos/sunset.jpg", "external_id": "ext-123"})
    assert again.status_code == 409 and again.json()["media"]["id"] == body["id"]


def test_import_follows_redirects_and_names_from_url(api: ApiServer, origin: str) -> None:
    key = api.new_key()["key"]
    body = api.request("POST", "/v1/import", key=key, json={"url": f"{origin}/redirect"}).json()
    assert body["name"] == "sunset.jpg"


def test_content_decides_not_the_content_type(api: ApiServer, origin: str) -> None:
    key = api.new_key()["key"]
    mislabelled = api.request("POST", "/v1/import", key=key, json={"url": f"{origin}/mislabelled"})
    assert mislabelled.status_code == 201 and mislabelled.json()["extension"] == "png"
    page = api.request("POST", "/v1/import", key=key, json={"url": f"{origin}/page.html"})
    assert page.status_code == 400 and page.json()["error"] == "unsupported_format"


def test_import_errors(api: ApiServer, origin: str) -> None:
    key = api.new_key()["key"]
    for body in ({}, {"url": ""}, {"url": None, "name": "x"}):
        response = api.request("POST", "/v1/import", key=key, json=body)
        assert response.status_code == 400 and response.json()["error"] == "missing_url"
    for url in (5, ["http://a/b.jpg"], {"href": "x"}):
        response = api.request("POST", "/v1/import", key=key, json={"url": url})
        assert response.status_code == 422 and "url" in response.json()["errors"]
    for url in (f"{origin}/missing", "ftp://127.0.0.1/x.jpg", "file:///etc/passwd",
                "not a url", "http://127.0.0.1:1/closed.jpg"):
        response = api.request("POST", "/v1/import", key=key, json={"url": url})
        assert response.status_code == 400, url
        assert response.json()["error"] == "fetch_failed", url
    bad_field = api.request("POST", "/v1/import", key=key,
                            json={"url": f"{origin}/photos/sunset.jpg", "namespace": "NO"})
    assert bad_field.status_code == 422 and "namespace" in bad_field.json()["errors"]
    malformed = api.request("POST", "/v1/import", key=key, content=b'{"url": ',
                            headers={"Content-Type": "application/json"})
    assert malformed.status_code == 422


def test_import_size_capped_while_streaming(api: ApiServer, origin: str) -> None:
    ip = fresh_ip()
    response = api.request("POST", "/v1/import", ip=ip, json={"url": f"{origin}/huge"})
    assert response.status_code == 400
    assert response.json()["error"] == "file_too_large"
    assert "20 MB" in response.json()["message"]
    assert response.headers["X-RateLimit-Limit"] == "20"  # anonymous: rate-limit headers


def test_anonymous_import(api: ApiServer, origin: str) -> None:
    response = api.request("POST", "/v1/import", json={"url": f"{origin}/photos/sunset.jpg"})
    assert response.status_code == 201
    assert "upgrade" in response.json() and "expires_at" in response.json()


def test_private_addresses_refused_by_default(api_factory, origin: str) -> None:  # type: ignore[no-untyped-def]
    strict = api_factory(IMGPRO_IMPORT_ALLOW_PRIVATE="0")
    key = strict.new_key()["key"]
    for url in (f"{origin}/photos/sunset.jpg", origin.replace("127.0.0.1", "localhost") + "/x"):
        response = strict.request("POST", "/v1/import", key=key, json={"url": url})
        assert response.status_code == 400
        assert response.json()["error"] == "fetch_failed"
