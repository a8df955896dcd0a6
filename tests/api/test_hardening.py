"""Smaller exposures of issue 15, over real servers: forged access log lines, the viewer's
CSP, who may read /metrics, and one URL per image on the CDN."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.api.conftest import ApiServer, tiny_png

TOKEN = "metrics-token-of-the-tests"


def logged_line(api: ApiServer, request_id: str) -> str:
    """The access log line of one request (the log is written a batch at a time)."""
    deadline = time.monotonic() + 30
    while True:
        lines = [line for line in api.server.log().splitlines() if f"id={request_id}" in line]
        if lines:
            (line,) = lines
            return line
        assert time.monotonic() < deadline, "the request never reached the access log"
        time.sleep(0.1)


def test_a_path_cannot_forge_access_log_lines(api: ApiServer) -> None:
    request_id = uuid.uuid4().hex
    forged = '/v1/x%0A10.0.0.1%20%22GET%20/admin%22%20200%200B%0D%E2%80%A8%C2%85%1B[31m%5C'
    response = api.http.get(forged, headers={"X-Request-ID": request_id})
    assert response.status_code == 404
    line = logged_line(api, request_id)
    assert line.startswith("127.0.0.1 ")
    assert '\\n10.0.0.1 \\"GET /admin\\" 200 0B\\r\\u2028\\x85\\x1b[31m\\\\"' in line
    assert not any(row.startswith('10.0.0.1 "GET /admin"') for row in api.server.log().splitlines())


@pytest.fixture(scope="module")
def on_cdn(api_factory: Callable[..., ApiServer]) -> ApiServer:
    """A server whose CDN base is another origin, as in production."""
    return api_factory(IMGPRO_CDN_URL="https://src.example")


def test_viewer_page_has_a_content_security_policy(on_cdn: ApiServer) -> None:
    media = on_cdn.upload().json()
    page = on_cdn.http.get(f"/{media['id']}")
    assert page.status_code == 200
    policy = dict(part.strip().split(" ", 1) for part in
                  page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and page.headers["x-frame-options"] == "DENY"
    assert policy["img-src"].split() == ["'self'", "https://src.example"]
    assert policy["style-src"].startswith("'sha256-")  # the inline style, by its hash only
    assert "script-src" not in policy  # default-src 'none': no script at all
    assert "https://src.example/" in page.text
    # The 404 page and the link pages carry the same policy.
    for path in ("/AAAAAAAAAAAA", "/v1/verify", "/v1/upgrade"):
        other = on_cdn.http.get(path)
        assert "frame-ancestors 'none'" in other.headers["content-security-policy"], path


def test_metrics_are_not_served_by_default(api: ApiServer) -> None:
    response = api.http.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "IMGPRO_METRICS_TOKEN" in response.json()["message"]
    assert api.http.get("/healthz").status_code == 200  # health stays open: load balancers


def test_metrics_token(api_factory: Callable[..., ApiServer]) -> None:
    api = api_factory(IMGPRO_METRICS_TOKEN=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-the-tests"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
        refused = api.http.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["error"] == "unauthorized"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    ok = api.http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "imgpro_http_requests_total" in ok.text


def test_metrics_on_their_own_address(api_factory: Callable[..., ApiServer]) -> None:
    api = api_factory(IMGPRO_METRICS_ADDRESS="127.0.0.1:0", IMGPRO_METRICS_TOKEN=TOKEN)
    match = re.search(r"metrics on (http://\S+)/metrics", api.server.log())
    assert match is not None, api.server.log()
    metrics_url = match.group(1)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # The main port never answers /metrics, token or not.
    assert api.http.get("/metrics", headers=auth).status_code == 404
    media = api.upload().json()
    with httpx.Client(base_url=metrics_url, timeout=30) as metrics:
        assert metrics.get("/metrics").status_code == 401
        ok = metrics.get("/metrics", headers=auth)
        assert ok.status_code == 200 and "imgpro_uploads_total" in ok.text
        # Nothing else is served there: not the API, not the CDN (not even from memory).
        src_path = media["src"].removeprefix(api.url)
        assert api.http.get(src_path).status_code == 200  # now in the memory cache
        for path in ("/healthz", "/v1/media", src_path, f"/{media['id']}"):
            assert metrics.get(path, headers=auth).status_code == 404, path


def test_one_url_per_image_on_the_cdn(api: ApiServer) -> None:
    media = api.upload(tiny_png(seed=9)).json()
    team_hash, name = media["src"].removeprefix(api.url + "/").split("/")
    uid, ext = name.split(".")
    plain = f"/{team_hash}/{uid}.{ext}"
    escaped_a = "".join(f"%{ord(c):02X}" for c in uid[:2]) + uid[2:]
    for spelling, query, location in (
        (f"/{team_hash}/{escaped_a}.{ext}", "", plain),
        (f"/{team_hash}/{uid}%2E{ext}", "?size=s&v=2", f"{plain}?size=s"),
        (f"/%{ord(team_hash[0]):02x}{team_hash[1:]}/{uid}.{ext}", "?size=%6D", f"{plain}?size=m"),
    ):
        response = api.http.get(spelling + query)
        assert response.status_code == 301, (spelling, response.text)
        assert response.headers["location"] == location
        assert api.http.get(location).status_code == 200
    for spelling in (f"/{team_hash}%2F{uid}.{ext}", f"/{team_hash}%2f{uid}.{ext}"):
        refused = api.http.get(spelling)
        assert refused.status_code == 404, spelling
        assert refused.json()["error"] == "not_found"
    assert api.http.get(f"/{team_hash}/{escaped_a}.{ext}?size=xl").status_code == 422
