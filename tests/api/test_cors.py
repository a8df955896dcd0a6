"""CORS: browser apps on other origins may call /v1 with a bearer key (IMGPRO_CORS_ORIGINS)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.api.conftest import ApiServer, tiny_png

ORIGIN = "https://app.example.com"


def _preflight(api: ApiServer, origin: str) -> httpx.Response:
    return api.request("OPTIONS", "/v1/upload", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})


def test_any_origin_by_default(api: ApiServer) -> None:
    preflight = _preflight(api, ORIGIN)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers
    # The real answer (here an anonymous upload) lets the page read the limits.
    upload = api.request("POST", "/v1/upload", headers={"Origin": ORIGIN},
                         files={"file": ("a.png", tiny_png(), "application/octet-stream")})
    assert upload.status_code == 201
    assert upload.headers["access-control-allow-origin"] == "*"
    exposed = upload.headers["access-control-expose-headers"].lower()
    assert "x-ratelimit-remaining" in exposed and "x-monthly-uploads-remaining" in exposed
    # Errors carry it too, so a page can read why it was refused.
    missing = api.request("GET", "/v1/media/doesnotexist", headers={"Origin": ORIGIN})
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == "*"


def test_listed_origins_only(api_factory: Callable[..., ApiServer]) -> None:
    api = api_factory(IMGPRO_CORS_ORIGINS=f"{ORIGIN}, https://admin.example.com")
    assert _preflight(api, ORIGIN).headers["access-control-allow-origin"] == ORIGIN
    refused = _preflight(api, "https://evil.example.net")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_off(api_factory: Callable[..., ApiServer]) -> None:
    api = api_factory(IMGPRO_CORS_ORIGINS="")
    answer = api.request("GET", "/v1/media/doesnotexist", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in answer.headers
    assert _preflight(api, ORIGIN).status_code == 405
