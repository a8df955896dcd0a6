"""Property-based fuzz of every /v1 operation, the link pages, the viewer and CDN paths.

Two kinds, both against a real server on SQLite and on PostgreSQL (the cursor bug of issue 15
was PostgreSQL's alone):

- hypothesis strategies (tests/api/odd_values.py) that build what the parsers must survive:
  JSON nested past orjson's write limit, integers past every column, NaN, booleans for
  numbers, control and line-separator characters, lone surrogates, cursors made of such
  JSON, multipart forms with odd names, values and files;
- a schemathesis state machine that walks the API through the document's links (list ->
  item -> patch/delete, list -> next page, upload -> item), with generated data at each step.

Every answer must be below 500, carry a status the document names for its operation, and
match its schema; 4xx bodies are the reference's error shape. And, as for every test here,
the server's log must stay free of unhandled errors (tests/conftest.py). The number of
examples is ``--fuzz-budget`` (or ``IMGPRO_FUZZ_BUDGET``); the CI default keeps the module to
a few tens of seconds and its inputs fixed, a larger budget also draws new ones.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from api.routes.pages import OPENAPI_PATH
from tests.api.conftest import ApiServer, tiny_png
from tests.api.odd_values import (
    ODD_STRINGS,
    dumps,
    form_fields,
    json_bodies,
    json_objects,
    query_params,
)
from tests.conftest import fuzz_budget, fuzz_is_fixed

BUDGET = fuzz_budget()
FUZZ = settings(max_examples=BUDGET, deadline=None, database=None, derandomize=fuzz_is_fixed(),
                suppress_health_check=list(HealthCheck))
SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
DOCUMENT = yaml.safe_load(OPENAPI_PATH.read_text())


@dataclass
class Target:
    """The fuzzed server, a key with room for many uploads, and media that exist."""

    api: ApiServer
    key: str
    media_ids: list[str]
    team_hash: str
    origin: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def target(api_factory: Callable[..., ApiServer], image_origin: str) -> Target:
    api = api_factory(IMGPRO_RATE_LIMITS="off")
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    key = api.new_key(email)["key"]
    api.sql("UPDATE accounts SET plan = 'max' WHERE email = :e", e=email)  # no quota in the way
    media = [api.upload(tiny_png(seed=i), key=key, namespace="fuzz-seed", tags="a,b",
                        author="seed").json() for i in range(3)]
    team_hash = media[0]["src"].rsplit("/", 2)[1]
    return Target(api, key, [m["id"] for m in media], team_hash, image_origin)


def check(response: httpx.Response, operation: tuple[str, str] | None = None) -> None:
    """No 5xx; the error shape on a JSON 4xx; for a /v1 operation, a documented status and
    a body that matches the document."""
    status = response.status_code
    assert status < 500, (response.request.method, str(response.request.url)[:300],
                          response.text[:500])
    if status >= 400 and response.headers.get("content-type") == "application/json":
        body = response.json()
        assert isinstance(body["error"], str) and isinstance(body["message"], str), body
    if operation is None:
        return
    method, path = operation
    documented = DOCUMENT["paths"][path][method.lower()]["responses"]
    assert str(status) in documented, (method, path, status, response.text[:300])
    response.request.read()  # multipart bodies stream; the validator wants them read
    SCHEMA[path][method].validate_response(response)


tokens = st.sampled_from(ODD_STRINGS) | st.text(max_size=80)


def escaped(segment: str) -> str:
    """One path segment as a client would percent-encode it (any bytes, even broken UTF-8)."""
    return quote(segment.encode("utf-8", "surrogatepass"), safe="")


def query(params: dict[str, str]) -> str:
    """``?a=b&...`` percent-encoded by hand: httpx refuses to encode lone surrogates."""
    return "?" + "&".join(f"{escaped(k)}={escaped(v)}" for k, v in params.items())




JSON_OPERATIONS = [("POST", "/v1/keys"), ("POST", "/v1/import"), ("PATCH", "/v1/media/{id}"),
                   ("PATCH", "/v1/media/batch"), ("DELETE", "/v1/media/batch")]


@FUZZ
@given(data=st.data(), operation=st.sampled_from(JSON_OPERATIONS), body=json_bodies,
       authenticated=st.booleans())
def test_json_bodies(target: Target, data: st.DataObject, operation: tuple[str, str],
                     body: bytes, authenticated: bool) -> None:
    method, path = operation
    url = path
    if path == "/v1/media/{id}":
        media_id = data.draw(st.sampled_from(target.media_ids) | tokens.map(lambda t: "x" + t))
        url = f"/v1/media/{escaped(media_id)}"
    if path == "/v1/import" and data.draw(st.booleans()):  # a URL that answers, odd fields
        fields = data.draw(json_objects)
        fields["url"] = data.draw(st.sampled_from([
            f"{target.origin}/image.png",
            *(f"{target.origin}/go?to={location}" for location in ODD_STRINGS[-12:])]))
        body = dumps(fields)
    headers = {"Content-Type": "application/json", **(target.auth if authenticated else {})}
    response = target.api.request(method, url, content=body, headers=headers)
    check(response, operation)


@FUZZ
@given(params=query_params, authenticated=st.booleans())
def test_list_queries_and_cursors(target: Target, params: dict[str, str],
                                  authenticated: bool) -> None:
    response = target.api.request("GET", "/v1/media" + query(params),
                                  headers=target.auth if authenticated else {})
    check(response, ("GET", "/v1/media"))


def multipart(fields: dict[str, str], file: tuple[str, bytes] | None) -> tuple[bytes, str]:
    """A form-data body written by hand: any text, lone surrogates included, goes on the wire
    (as the bytes a broken client would send), which httpx would refuse to encode."""
    boundary = secrets.token_hex(12)
    parts = []

    def name_of(text: str) -> bytes:
        return (text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
                .encode("utf-8", "surrogatepass"))

    for name, value in fields.items():
        parts.append(b'Content-Disposition: form-data; name="' + name_of(name) + b'"\r\n\r\n'
                     + value.encode("utf-8", "surrogatepass"))
    if file is not None:
        filename, data = file
        parts.append(b'Content-Disposition: form-data; name="file"; filename="'
                     + name_of(filename) + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     + data)
    sep = b"--" + boundary.encode()
    body = b"".join(sep + b"\r\n" + part + b"\r\n" for part in parts) + sep + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary}"


files = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(ODD_STRINGS) | st.text(max_size=30),
              st.sampled_from([tiny_png(), b"", b"GIF89a", b"\x89PNG\r\n\x1a\n", b"<svg"])
              | st.binary(max_size=64)),
)


@FUZZ
@given(fields=form_fields, file=files, authenticated=st.booleans())
def test_upload_forms(target: Target, fields: dict[str, str], file: tuple[str, bytes] | None,
                      authenticated: bool) -> None:
    body, content_type = multipart(fields, file)
    headers = {"Content-Type": content_type, **(target.auth if authenticated else {})}
    response = target.api.request("POST", "/v1/upload", content=body, headers=headers)
    check(response, ("POST", "/v1/upload"))


@FUZZ
@given(token=tokens, form=st.binary(max_size=200) | tokens.map(
    lambda t: ("token=" + t).encode("utf-8", "surrogatepass")), media_id=tokens)
def test_links_and_viewer(target: Target, token: str, form: bytes, media_id: str) -> None:
    api = target.api
    check(api.request("GET", "/v1/verify" + query({"token": token})), ("GET", "/v1/verify"))
    check(api.request("GET", "/v1/upgrade" + query({"token": token})), ("GET", "/v1/upgrade"))
    posted = api.request("POST", "/v1/verify", content=form,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(posted, ("POST", "/v1/verify"))
    check(api.request("GET", "/" + escaped(media_id)))


@FUZZ
@given(data=st.data(), ext=st.sampled_from(["png", "jpg", "webp", "avif", "gif", "PNG", "exe"]),
       qs=st.sampled_from(["", "size=s", "size=m&v=1", "size=%6D", "size=xl", "size=s&size=m",
                              "size=", "size"]) | st.text(max_size=20))
def test_cdn_paths(target: Target, data: st.DataObject, ext: str, qs: str) -> None:
    uid = data.draw(st.sampled_from(target.media_ids) | st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789_-%2F.", max_size=20))
    team = data.draw(st.sampled_from([target.team_hash, "anon", "%2e%2e", "t"]))
    qs = quote(qs.encode("utf-8", "surrogatepass"), safe="=&%")
    response = target.api.http.get(f"/{team}/{uid}.{ext}" + (f"?{qs}" if qs else ""))
    check(response)


CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def test_stateful_walk_through_the_links(target: Target) -> None:
    """schemathesis' state machine over the document's links (and the ones it infers), with
    generated data at every step; each step is checked like the examples above.

    A failed check is recorded, not raised: the server's state moves on between scenarios
    (media get deleted, cursors change), so hypothesis could not replay a failing scenario to
    shrink it and would call it flaky. For the same reason a ``Flaky`` from hypothesis'
    own replays only ends the walk early; what it found until then stands.
    """
    seen: list[tuple[str, str, int]] = []
    failures: list[str] = []

    class Walk(SCHEMA.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every scenario finds media to walk to, whatever the ones before deleted.
            assert target.api.upload(tiny_png(seed=len(seen)), key=target.key).status_code == 201

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": target.api.url, "headers": target.auth, "timeout": 60}

        def after_call(self, response: Any, case: Any) -> None:
            seen.append((case.method, case.path, response.status_code))

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)
            except Exception as failure:  # noqa: BLE001 - every kind of check failure
                failures.append(f"{case.method} {case.formatted_path}: {failure}"[:3000])

    with contextlib.suppress(Flaky):
        Walk.run(settings=settings(FUZZ, stateful_step_count=6))
    assert not failures, "\n\n".join(failures[:3])
    # The walk went past the first call: the links carried real ids (and cursors).
    assert any(path == "/v1/media/{id}" for _, path, _ in seen), seen
