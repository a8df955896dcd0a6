"""Bodies in flight share one budget per process (503 + Retry-After once it stays full), and
refused attempts of a key's team count against its hourly allowance (then 429)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from tests.api.conftest import ApiServer, fresh_ip, tiny_png

MB = 1024 * 1024


METRICS_TOKEN = "metrics-token-of-the-intake-tests"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}

class HeldBody:
    """An upload that declares ``size`` bytes, sends a first piece and holds the rest back."""

    def __init__(self, url: str, size: int, key: str | None = None) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        self.sock.sendall(
            f"POST /v1/upload HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Forwarded-For: {fresh_ip()}\r\n"
            f"{auth}Content-Type: multipart/form-data; boundary=held\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
            + b'--held\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            + tiny_png()[:16])

    def close(self) -> None:
        self.sock.close()


def wait_reserved(api: ApiServer, at_least: float) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in api.http.get("/metrics", headers=METRICS_AUTH).text.splitlines():
            if line.startswith("imgpro_body_budget_reserved_bytes") and \
                    float(line.split()[-1]) >= at_least:
                return
        time.sleep(0.05)
    raise AssertionError("the held body never reserved its room")


def test_full_body_budget_is_503_with_retry_after(
        api_factory: Callable[..., ApiServer]) -> None:
    api = api_factory(IMGPRO_BODY_BUDGET_MB="2", IMGPRO_BODY_BUDGET_WAIT="0.3",
                      IMGPRO_METRICS_TOKEN=METRICS_TOKEN)
    held = HeldBody(api.url, 2 * MB)  # takes the whole budget while it is being received
    try:
        wait_reserved(api, 2 * MB)
        refused = api.upload(tiny_png())
        assert refused.status_code == 503, refused.text
        body = refused.json()
        assert body["error"] == "service_unavailable"
        assert body["action"] == {"type": "wait", "seconds": int(refused.headers["retry-after"])}
        assert refused.headers["connection"] == "close"
    finally:
        held.close()
    deadline = time.monotonic() + 30
    while (answer := api.upload(tiny_png())).status_code == 503:  # the held body's room is back
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)
    assert answer.status_code == 201, answer.text


def test_refused_uploads_count_against_the_team(
        api_factory: Callable[..., ApiServer]) -> None:
    api = api_factory(IMGPRO_REFUSED_UPLOADS_PER_HOUR="3")
    key = api.new_key()["key"]
    for junk in (b"not an image" * 100, tiny_png()[:-20], b"GIF89a" + bytes(100)):
        refused = api.upload(junk, key=key)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "unsupported_format"
    limited = api.upload(tiny_png(), key=key)  # even a good image, until the hour is over
    assert limited.status_code == 429, limited.text
    assert limited.json()["error"] == "rate_limited"
    assert 0 < int(limited.headers["retry-after"]) <= 3600
    assert limited.headers["x-monthly-uploads-used"] == "0"
    other = api.new_key()["key"]  # another team is not affected
    assert api.upload(tiny_png(), key=other).status_code == 201
    imported = api.request("POST", "/v1/import", key=key,
                           json={"url": f"{api.url}/does-not-matter.png"})
    assert imported.status_code == 429
