"""POST /v1/upload: fields, type detection, size limits while streaming, anonymous limits,
quotas and their headers, and the two races (last quota unit, same external_id)."""

from __future__ import annotations

import io
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.conftest import ApiServer, fresh_ip, tiny_png, tiny_svg
from tests.conftest import CorpusImage

MB = 1024 * 1024


def _encode(fmt: str) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (24, 16), (200, 30, 30))
    out = io.BytesIO()
    if fmt == "avif":
        import pyvips

        return bytes(pyvips.Image.black(24, 16, bands=3).heifsave_buffer(compression="av1"))
    if fmt == "heic":
        import pillow_heif

        pillow_heif.from_pillow(image).save(out, format="HEIF")
    else:
        image.save(out, format={"jpeg": "JPEG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP",
                                "tiff": "TIFF", "png": "PNG"}[fmt])
    return out.getvalue()


def assert_src_serves(api: ApiServer, body: dict, data: bytes) -> None:
    """``src`` is a working CDN URL of the stored original (the CDN origin serves it)."""
    response = httpx.get(body["src"], timeout=30)
    assert response.status_code == 200
    assert response.content == data


def test_upload_every_field(api: ApiServer, corpus: list[CorpusImage]) -> None:
    key = api.new_key()["key"]
    image = next(c for c in corpus if c.format == "jpeg")
    response = api.request(
        "POST", "/v1/upload", key=key,
        files={"file": ("photo.jpg", image.data, "image/jpeg")},
        data={"name": "My Photo", "tags": "hero, homepage,hero", "namespace": "my-project",
              "public": "false", "external_id": "ext-1", "date": "2025-06-15T12:00:00Z",
              "ttl": "7200", "metadata": '{"source": "camera", "n": 3}', "author": "Jane Doe",
              "license": "cc-by-4.0"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "My Photo"
    assert (body["width"], body["height"]) == (image.width, image.height)
    assert body["filesize"] == image.bytes
    assert body["extension"] == "jpeg"
    assert body["editable"] is True
    assert body["tags"] == ["hero", "homepage"]
    assert body["namespace"] == "my-project"
    assert body["public"] is False
    assert body["external_id"] == "ext-1"
    assert body["date"] == int(datetime(2025, 6, 15, 12, tzinfo=UTC).timestamp())
    assert body["expires_at"] == body["created_at"] + 7200
    assert abs(body["created_at"] - time.time()) < 60
    assert (body["author"], body["license"], body["source"], body["n"]) == (
        "Jane Doe", "cc-by-4.0", "camera", 3)
    assert body["url"] == f"{api.url}/{body['id']}"
    team_hash = api.sql("SELECT t.hash FROM teams t JOIN media m ON m.team_id = t.id "
                        "WHERE m.id = :i", i=body["id"])[0][0]
    assert body["src"] == f"{api.url}/{team_hash}/{body['id']}.jpeg"
    assert "upgrade" not in body
    # The original is stored byte for byte, under the id the response names.
    assert (api.data_dir / "originals" / team_hash / body["id"]).read_bytes() == image.data
    assert_src_serves(api, body, image.data)


def test_defaults(api: ApiServer) -> None:
    key = api.new_key()["key"]
    body = api.upload(key=key, filename="holiday.png").json()
    assert body["name"] == "holiday.png"
    assert body["public"] is True
    assert body["tags"] == [] and body["namespace"] is None
    assert body["expires_at"] == body["created_at"] + 30 * 86400  # unverified key: 30 days
    assert len(body["id"]) == 12 and body["id"].isalnum()


@pytest.mark.parametrize("fmt", ["jpeg", "png", "gif", "webp", "bmp", "tiff", "heic", "avif"])
def test_formats_detected_by_content(api: ApiServer, fmt: str) -> None:
    data = _encode(fmt)
    key = api.new_key()["key"]
    # The filename and the client's content type lie; the content decides.
    response = api.request("POST", "/v1/upload", key=key,
                           files={"file": ("lies.txt", data, "text/plain")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["extension"] == fmt
    assert (body["width"], body["height"]) == (24, 16)
    assert body["src"].endswith(f".{fmt}")
    assert_src_serves(api, body, data)


def test_svg(api: ApiServer) -> None:
    body = api.upload(tiny_svg(40, 30), key=api.new_key()["key"], filename="x.png").json()
    assert (body["extension"], body["width"], body["height"]) == ("svg", 40, 30)
    assert_src_serves(api, body, tiny_svg(40, 30))


def test_not_an_image(api: ApiServer) -> None:
    created = api.new_key()
    for data in (b"hello world, not an image", b"\xff\xd8\xff\xe0garbage" * 10):
        response = api.upload(data, key=created["key"], filename="photo.jpg")
        assert response.status_code == 400, data[:20]
        assert response.json()["error"] == "unsupported_format"
    team = _team_of(api, created["key_id"])
    assert api.sql("SELECT count(*) FROM media WHERE team_id = :t", t=team) == [(0,)]
    usage = api.request("GET", "/v1/usage", key=created["key"]).json()
    assert usage["uploads_used"] == 0 and usage["storage_used_bytes"] == 0


def test_missing_file(api: ApiServer) -> None:
    key = api.new_key()["key"]
    no_file = api.request("POST", "/v1/upload", key=key, files={"other": ("a.png", tiny_png())},
                          data={"name": "x"})
    assert no_file.status_code == 400 and no_file.json()["error"] == "missing_file"
    not_multipart = api.request("POST", "/v1/upload", key=key, json={"name": "x"})
    assert not_multipart.status_code == 400 and not_multipart.json()["error"] == "missing_file"
    empty = api.request("POST", "/v1/upload", key=key, data={"name": "x"})
    assert empty.status_code == 400 and empty.json()["error"] == "missing_file"


def test_field_validation(api: ApiServer) -> None:
    key = api.new_key()["key"]
    cases = {
        "tags": ",".join(f"t{i}" for i in range(11)),
        "namespace": "Not_Valid",
        "public": "maybe",
        "date": "yesterday",
        "ttl": "60",
        "metadata": "{not json",
        "id": "shadowing a response field",
        "name": " ",
    }
    for field, value in cases.items():
        response = api.upload(key=key, **{field: value})
        assert response.status_code == 422, (field, response.text)
        body = response.json()
        assert body["error"] == "validation_error"
        assert list(body["errors"]) == [field]
        assert isinstance(body["errors"][field], list) and body["message"]
    long_tag = api.upload(key=key, tags="x" * 51)
    assert long_tag.status_code == 422 and "tags" in long_tag.json()["errors"]
    for namespace in ("a", "x" * 65, "-ab", "ab-"):
        assert api.upload(key=key, namespace=namespace).status_code == 422, namespace
    # Several bad fields are reported together.
    both = api.upload(key=key, namespace="BAD", ttl="1").json()
    assert set(both["errors"]) == {"namespace", "ttl"}
    # Unix timestamps are dates too.
    assert api.upload(key=key, date="1700000000").json()["date"] == 1700000000


def test_anonymous_upload(api: ApiServer) -> None:
    ip = fresh_ip()
    response = api.upload(ip=ip)
    assert response.status_code == 201
    body = response.json()
    assert body["expires_at"] == body["created_at"] + 30 * 86400
    upgrade = body["upgrade"]
    assert set(upgrade) == {"type", "url", "message", "label"}
    assert httpx.get(upgrade["url"]).status_code == 200
    assert body["editable"] is False
    assert response.headers["X-RateLimit-Limit"] == "20"
    assert response.headers["X-RateLimit-Remaining"] == "19"
    assert response.headers["X-RateLimit-Limit-Daily"] == "100"
    assert response.headers["X-RateLimit-Remaining-Daily"] == "99"
    reset = int(response.headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 3600
    assert "X-Monthly-Uploads-Used" not in response.headers
    # Authenticated-only fields.
    ttl = api.upload(ip=ip, ttl="7200")
    assert ttl.status_code == 422 and "ttl" in ttl.json()["errors"]
    ext = api.upload(ip=ip, external_id="e")
    assert ext.status_code == 422 and "external_id" in ext.json()["errors"]
    # Anonymous media are public only through the viewer / unauthenticated GET.
    assert api.request("GET", f"/v1/media/{body['id']}").status_code == 200


def test_anonymous_hourly_limit(api: ApiServer) -> None:
    ip = fresh_ip()
    remaining = [int(api.upload(ip=ip).headers["X-RateLimit-Remaining"]) for _ in range(20)]
    assert remaining == list(range(19, -1, -1))
    refused = api.upload(ip=ip)
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "rate_limited"
    assert body["action"]["type"] == "wait"
    assert int(refused.headers["Retry-After"]) == body["action"]["seconds"] > 0
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Remaining-Daily"] == "80"
    # Other clients are not affected.
    assert api.upload(ip=fresh_ip()).status_code == 201


def test_anonymous_daily_limit(api: ApiServer) -> None:
    ip = fresh_ip()
    api.upload(ip=ip)
    day = int(time.time()) // 86400 * 86400
    api.sql("UPDATE rate_counters SET count = 99 WHERE key = :k", k=f"anon-upload-day:{ip}:{day}")
    last = api.upload(ip=ip)
    assert last.status_code == 201 and last.headers["X-RateLimit-Remaining-Daily"] == "0"
    refused = api.upload(ip=ip)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Remaining"] == "18"  # the refused one is not counted
    assert int(refused.headers["Retry-After"]) > 0


def test_quota_headers_match_usage(api: ApiServer) -> None:
    key = api.new_key()["key"]
    data = tiny_png(seed=7)
    first = api.upload(data, key=key)
    second = api.upload(data, key=key)
    assert first.headers["X-Monthly-Uploads-Used"] == "1"
    h = second.headers
    assert h["X-Monthly-Uploads-Used"] == "2"
    assert h["X-Monthly-Uploads-Limit"] == "100"
    assert h["X-Monthly-Uploads-Remaining"] == "98"
    assert h["X-Storage-Used"] == str(2 * len(data))
    assert h["X-Storage-Limit"] == str(5 * 1024**3)
    assert h["X-Storage-Remaining"] == str(5 * 1024**3 - 2 * len(data))
    assert "X-RateLimit-Limit" not in h
    usage = api.request("GET", "/v1/usage", key=key).json()
    assert usage["uploads_used"] == 2 and usage["storage_used_bytes"] == 2 * len(data)
    # Refusals carry them too, unchanged: nothing was counted.
    for refused in (api.upload(b"not an image", key=key), api.upload(data, key=key, tags="x" * 51)):
        assert refused.status_code in (400, 422)
        assert refused.headers["X-Monthly-Uploads-Used"] == "2"
        assert refused.headers["X-Storage-Used"] == str(2 * len(data))


def test_blank_form_fields_mean_not_set(api: ApiServer) -> None:
    key = api.new_key()["key"]
    blank = {f: "" for f in ("name", "public", "ttl", "external_id", "tags", "namespace", "date",
                             "metadata")}
    response = api.upload(key=key, filename="holiday.png", author="", **blank)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "holiday.png" and body["public"] is True
    assert body["tags"] == [] and body["namespace"] is None
    # No ttl: the expiry is the unverified account's 30-day retention.
    assert body["expires_at"] == body["created_at"] + 30 * 86400
    assert body["author"] == ""  # a custom field keeps its (empty) value
    # In JSON an empty string is a value: PATCH still refuses an empty name.
    patched = api.request("PATCH", f"/v1/media/{body['id']}", key=key, json={"name": ""})
    assert patched.status_code == 422 and "name" in patched.json()["errors"]


def _team_of(api: ApiServer, key_id: str) -> int:
    return int(api.sql("SELECT team_id FROM api_keys WHERE key_id = :k", k=key_id)[0][0])


def _set_month_uploads(api: ApiServer, team_id: int, uploads: int) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    api.sql("DELETE FROM usage_months WHERE team_id = :t", t=team_id)
    api.sql("INSERT INTO usage_months (team_id, month, uploads) VALUES (:t, :m, :u)",
            t=team_id, m=month, u=uploads)


def test_monthly_quota_exceeded(api: ApiServer) -> None:
    created = api.new_key()
    _set_month_uploads(api, _team_of(api, created["key_id"]), 100)
    response = api.upload(key=created["key"])
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "quota_exceeded"
    assert body["action"]["type"] == "upgrade" and body["action"]["label"]
    assert response.headers["X-Monthly-Uploads-Remaining"] == "0"
    # The upgrade link is signed and one-click: no key needed to open it.
    page = httpx.get(body["action"]["url"])
    assert page.status_code == 200 and "pro" in page.text.lower()
    tampered = httpx.get(body["action"]["url"] + "x")
    assert tampered.status_code == 400


def test_refusal_before_the_body_reads_a_small_one_and_keeps_the_connection(
        api: ApiServer) -> None:
    """A quota refusal comes before the body is read. For a small body the server reads it
    first, so the 413 reliably reaches the client (closing on unread bytes resets the socket
    and can lose the answer) and the connection stays usable; a large one is still closed."""
    created = api.new_key()
    _set_month_uploads(api, _team_of(api, created["key_id"]), 100)
    host, port = api.url.removeprefix("http://").split(":")

    def refused(claimed_length: int, body: bytes) -> tuple[bytes, socket.socket]:
        sock = socket.create_connection((host, int(port)), timeout=30)
        head = (f"POST /v1/upload HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {created['key']}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {claimed_length}\r\n\r\n").encode()
        sock.sendall(head)
        time.sleep(0.2)  # the answer is decided on the head alone; the body comes later
        sock.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        return answer, sock

    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
            + tiny_png() + b"\r\n--b--\r\n")
    answer, sock = refused(len(body), body)
    with sock:
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"connection: close" not in answer.lower()
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        again = b""
        while b"HTTP/1.1 200" not in again:
            chunk = sock.recv(65536)
            assert chunk, "the connection was closed after the refusal"
            again += chunk
    answer, sock = refused(2 * 1024 * 1024, b"x" * 1000)
    with sock:
        assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower()


def test_storage_quota_exceeded(api: ApiServer) -> None:
    created = api.new_key()
    team = _team_of(api, created["key_id"])
    api.sql("UPDATE teams SET storage_bytes = :b WHERE id = :t", b=5 * 1024**3 - 10, t=team)
    response = api.upload(key=created["key"])
    assert response.status_code == 413
    assert response.json()["error"] == "quota_exceeded"
    assert response.headers["X-Storage-Remaining"] == "10"
    assert response.headers["X-Monthly-Uploads-Used"] == "0"  # the refusal counted nothing


def test_race_for_the_last_quota_unit(api: ApiServer) -> None:
    created = api.new_key()
    team = _team_of(api, created["key_id"])
    _set_month_uploads(api, team, 98)
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda i: api.upload(tiny_png(seed=i), key=created["key"]),
                                  range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 201, 413, 413, 413, 413]
    usage = api.request("GET", "/v1/usage", key=created["key"]).json()
    assert usage["uploads_used"] == 100
    stored = sum(r.json()["filesize"] for r in responses if r.status_code == 201)
    assert usage["storage_used_bytes"] == stored
    assert api.sql("SELECT count(*) FROM media WHERE team_id = :t", t=team) == [(2,)]
    # Nothing of the losers is left in the store.
    team_hash = api.sql("SELECT hash FROM teams WHERE id = :t", t=team)[0][0]
    assert len(list((api.data_dir / "originals" / team_hash).iterdir())) == 2


def test_duplicate_external_id(api: ApiServer) -> None:
    key = api.new_key()["key"]
    first = api.upload(key=key, external_id="same")
    assert first.status_code == 201
    again = api.upload(tiny_png(seed=3), key=key, external_id="same")
    assert again.status_code == 409
    body = again.json()
    assert body["error"] == "duplicate"
    assert body["media"]["id"] == first.json()["id"]
    assert again.headers["X-Monthly-Uploads-Used"] == "1"
    # Unique per team: another team may use the same external_id.
    assert api.upload(key=api.new_key()["key"], external_id="same").status_code == 201


def test_race_on_the_same_external_id(api: ApiServer) -> None:
    key = api.new_key()["key"]
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(
            lambda i: api.upload(tiny_png(seed=i), key=key, external_id="race"), range(5)))
    created = [r for r in responses if r.status_code == 201]
    assert len(created) == 1, [r.text for r in responses]
    winner = created[0].json()["id"]
    for response in responses:
        if response.status_code != 201:
            assert response.status_code == 409
            assert response.json()["media"]["id"] == winner
    usage = api.request("GET", "/v1/usage", key=key).json()
    assert usage["uploads_used"] == 1
    assert usage["storage_used_bytes"] == created[0].json()["filesize"]


def _stream_upload(url: str, total: int, *, chunked: bool, head: bytes = b"\x89PNG\r\n\x1a\n",
                   headers: str = "") -> tuple[bytes, int]:
    """Send a multipart body of ``total`` bytes, stopping as soon as the server answers.

    Returns (response bytes, bytes sent). A server that refuses while streaming answers
    long before the body ends and closes the connection.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    boundary = "imgprotestboundary"
    prologue = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="big.png"\r\nContent-Type: image/png\r\n\r\n').encode()
    request = (f"POST /v1/upload HTTP/1.1\r\nHost: test\r\n{headers}"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               + ("Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {total}\r\n")
               + "\r\n").encode()
    chunk = head + b"\0" * (MB - len(head))
    sent = 0
    try:
        sock.sendall(request)
        for piece in [prologue] + [chunk] * (total // MB):
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
            chunk = b"\0" * MB
    except OSError:
        pass  # the server closed the connection on us: what it answered is still readable
    sock.settimeout(10)
    response = b""
    try:
        while data := sock.recv(65536):
            response += data
    except OSError:
        pass
    sock.close()
    return response, sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversize_refused_while_streaming(api: ApiServer, chunked: bool) -> None:
    total = 300 * MB
    response, sent = _stream_upload(api.url, total, chunked=chunked,
                                    headers=f"X-Forwarded-For: {fresh_ip()}\r\n")
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert b'"error":"file_too_large"' in response
    assert b"connection: close" in response.lower()
    # Refused after about one limit's worth (20 MB anonymous), not after the whole body.
    assert sent < 60 * MB, sent


def test_authenticated_limit_is_70_mb(api: ApiServer) -> None:
    key = api.new_key()["key"]
    response, sent = _stream_upload(api.url, 200 * MB, chunked=True,
                                    headers=f"Authorization: Bearer {key}\r\n")
    assert b'"error":"file_too_large"' in response and b"70 MB" in response
    assert 70 * MB < sent < 120 * MB


def test_svg_limit_is_10_mb(api: ApiServer) -> None:
    key = api.new_key()["key"]
    svg = tiny_svg()[:-6] + b"<!--" + b" " * (11 * MB) + b"--></svg>"
    response = api.upload(svg, key=key, filename="big.svg")
    assert response.status_code == 400
    assert response.json()["error"] == "file_too_large"
    assert "10 MB" in response.json()["message"]


def test_a_truncated_upload_is_refused_and_counts_nothing(api: ApiServer,
                                                           corpus: list[CorpusImage]) -> None:
    key = api.new_key()["key"]
    for fmt in ("jpeg", "png"):
        data = next(c for c in corpus if c.format == fmt).data
        response = api.upload(data[: len(data) // 3], key=key, filename=f"cut.{fmt}")
        assert response.status_code == 400 and response.json()["error"] == "unsupported_format"
        assert "truncated" in response.json()["message"]
    usage = api.request("GET", "/v1/usage", key=key).json()
    assert usage["uploads_used"] == 0 and usage["storage_used_bytes"] == 0
