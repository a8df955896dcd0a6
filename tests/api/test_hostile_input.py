"""Bad input of every kind gets a 4xx in the reference's JSON shape: never a 500, never HTML
(and no unhandled error in the server's log: tests/conftest.py checks that after every test)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.api.conftest import ApiServer, tiny_png


@pytest.fixture(scope="module")
def key(api: ApiServer) -> str:
    return str(api.new_key()["key"])


def _assert_client_error(response: Any, status: int | None = None) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    if response.status_code == 422:
        assert isinstance(body["errors"], dict) and body["errors"]


def test_control_characters_and_long_values(api: ApiServer, key: str) -> None:
    for field, value in (("name", "a\x00b"), ("tags", "ok,b\x00d"), ("external_id", "e\x00"),
                         ("external_id", "e" * 256), ("name", "n" * 256), ("x" * 65, "v"),
                         ("metadata", '{"bad\\u0001key": 1}')):
        _assert_client_error(api.upload(key=key, **{field: value}), 422)
    # A hostile filename only feeds the default name: cleaned and shortened, never an error.
    body = api.upload(key=key, filename="evil\x00name" + "z" * 400 + ".png").json()
    assert "\x00" not in body["name"] and len(body["name"]) <= 255


def test_metadata_limits(api: ApiServer, key: str) -> None:
    too_many = orjson.dumps({f"k{i}": i for i in range(51)}).decode()
    _assert_client_error(api.upload(key=key, metadata=too_many), 422)
    too_big = orjson.dumps({"blob": "x" * 20_000}).decode()
    _assert_client_error(api.upload(key=key, metadata=too_big), 422)
    for metadata in ("[1, 2]", "null-ish", '"text"'):
        _assert_client_error(api.upload(key=key, metadata=metadata), 422)
    media = api.upload(key=key).json()
    for patch in ({"metadata": [1]}, {"metadata": {"id": "x"}}, {"tags": 5}, {"name": None},
                  {"date": True}, {"date": "2020-13-45"}, {"date": 1e300}, {"ttl": "soon"},
                  {"public": None}, {"external_id": {"a": 1}}):
        _assert_client_error(
            api.request("PATCH", f"/v1/media/{media['id']}", key=key, json=patch), 422)


def test_cursors_and_query_values(api: ApiServer, key: str) -> None:
    def cursor(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    for bad in (cursor({"s": 10**30, "q": 1}), cursor({"s": "x", "q": 1}), cursor([1, 2]),
                cursor({"s": 1.5, "q": 2}), "%%%", "a" * 5000):
        _assert_client_error(api.request("GET", "/v1/media", key=key, params={"cursor": bad}), 422)
    for params in ({"limit": "-1"}, {"limit": "1e2"}, {"limit": "9" * 40},
                   {"tags": ",".join("t" * 60 for _ in range(3))}):
        _assert_client_error(api.request("GET", "/v1/media", key=key, params=params), 422)


def test_bodies_of_the_wrong_kind(api: ApiServer, key: str) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    for path, method in (("/v1/keys", "POST"), ("/v1/import", "POST"),
                         ("/v1/media/batch", "PATCH"), ("/v1/media/batch", "DELETE")):
        for content in (deep, b"\xff\xfe\x00garbage", b'{"ids": "x"}', b"x" * (2 * 1024 * 1024),
                        b"123", b'{"update": [], "ids": [1, 2]}'):
            response = api.request(method, path, key=key, content=content,
                                   headers={"Content-Type": "application/json"})
            _assert_client_error(response)
    media = api.upload(key=key).json()
    _assert_client_error(api.request("PATCH", f"/v1/media/{media['id']}", key=key,
                                     content=b"[]"), 422)


def test_multipart_oddities(api: ApiServer, key: str) -> None:
    boundary = "b0undary"
    bodies = [
        b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",  # truncated
        b"not multipart at all",
        b"--b0undary--\r\n",
        (b"--b0undary\r\n" + b"X-Header: v\r\n" * 50 + b"\r\n\r\n--b0undary--\r\n"),
    ]
    for body in bodies:
        response = api.request("POST", "/v1/upload", key=key, content=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        _assert_client_error(response)
    many_fields = {f"f{i}": "v" for i in range(150)}
    _assert_client_error(api.upload(key=key, **many_fields), 422)
    not_utf8 = api.request("POST", "/v1/upload", key=key,
                           files={"file": ("a.png", tiny_png())}, data={"caption": "caf\xe9"})
    assert not_utf8.status_code == 201
    # A text field named "file" before the uploaded file: the upload is the file.
    image = tiny_png(seed=7)
    both = (b'--b0undary\r\nContent-Disposition: form-data; name="file"\r\n\r\nnot an image'
            b'\r\n--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.png"'
            b"\r\nContent-Type: image/png\r\n\r\n" + image + b"\r\n--b0undary--\r\n")
    response = api.request("POST", "/v1/upload", key=key, content=both, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 201, response.text
    assert response.json()["filesize"] == len(image)


def test_paths_and_ids(api: ApiServer, key: str) -> None:
    for path in ("/v1/media/%00", "/v1/media/" + "a" * 5000, "/v1/media/..%2F..%2Fetc",
                 "/%00", "/" + "A" * 12 + "%00", "/v1/media/batch/x"):
        response = api.request("GET", path, key=key)
        assert response.status_code in (404, 422), (path, response.status_code)
    for method in ("PATCH", "DELETE"):
        _assert_client_error(api.request(method, "/v1/media/" + "z" * 300, key=key,
                                         json={"name": "x"}), 404)


def _stalled(api: ApiServer, head: str, first_bytes: bytes) -> tuple[bytes, bool]:
    """Send a request head and the start of its body, then nothing: (the answer, closed?)."""
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + first_bytes)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                return answer, True
            answer += chunk
        return answer, sock.recv(1) == b""


def test_a_stalled_body_is_a_408_that_frees_the_connection(
        api_factory: Callable[..., ApiServer]) -> None:
    api = api_factory(IMGPRO_BODY_IDLE_TIMEOUT="1")
    part = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
            + tiny_png())
    for path, content_type, first in (("/v1/upload", "multipart/form-data; boundary=b", part),
                                      ("/v1/import", "application/json", b'{"url": "ht')):
        head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: 1000000\r\n\r\n")
        answer, closed = _stalled(api, head, first)
        status_line, _, rest = answer.partition(b"\r\n")
        assert b" 408 " in status_line, answer[:300]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"
        assert closed
    assert api.upload().status_code == 201  # and the server serves the next one


def test_an_empty_file_is_missing(api: ApiServer) -> None:
    response = api.upload(b"")
    _assert_client_error(response, 400)
    assert response.json()["error"] == "missing_file"


def _send_head(api: ApiServer, head: bytes) -> bytes:
    """Send a request head, then read until the server closes (b"" if it reset instead)."""
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        answer = b""
        try:
            sock.sendall(head)
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


@pytest.mark.parametrize("head", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-A%d: %s\r\n" % (i, b"v" * 100) for i in range(2000)) + b"\r\n",
    b"GET /v1/media?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_a_huge_request_head_is_refused(api: ApiServer, head: bytes) -> None:
    answer = _send_head(api, head)
    # The answer is a 431 in the JSON error shape and the connection is closed (a reset, when
    # the kernel still held unread bytes at the close, proves the same: the server let go).
    if answer:
        status_line, _, rest = answer.partition(b"\r\n")
        assert b" 431 " in status_line, answer[:200]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "headers_too_large"
    assert api.request("GET", "/healthz").status_code == 200
    # A normal head of a few KiB still works.
    assert api.request("GET", "/healthz", headers={"X-Big": "v" * 8000}).status_code == 200


@pytest.mark.parametrize("head", [
    b"GET /v1/media HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/import HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /v1/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello to a plain-HTTP port\r\n\r\n",
])
def test_unparsable_http_gets_a_json_400(api: ApiServer, head: bytes) -> None:
    answer = _send_head(api, head)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request", answer[:200]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "bad_request"


def test_a_trailing_slash_is_ignored(api: ApiServer, key: str) -> None:
    media = api.upload(key=key).json()
    listed = api.request("GET", "/v1/media/", key=key)
    assert listed.status_code == 200 and media["id"] in [m["id"] for m in listed.json()["items"]]
    assert api.request("GET", f"/v1/media/{media['id']}/", key=key).json()["id"] == media["id"]
    assert api.request("DELETE", f"/v1/media/{media['id']}//", key=key).json() == {"deleted": True}
    assert api.request("GET", f"/v1/media/{media['id']}", key=key).status_code == 404
