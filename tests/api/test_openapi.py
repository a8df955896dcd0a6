"""api/openapi.yaml: a valid OpenAPI 3.1 document that matches the routes and the running server.

Three layers: the document validates as OpenAPI 3.1; it names exactly the /v1 routes the app
has (so neither can drift alone); and schemathesis sends generated requests to every operation
of a real server and checks that nothing answers 5xx, every status is documented and every
body matches its schema. Examples per operation: the fuzz budget (``--fuzz-budget``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from api.routes.pages import OPENAPI_PATH
from api.serving.v1_app import ROUTES
from tests.conftest import (
    CorpusImage,
    RunningServer,
    fuzz_budget,
    fuzz_is_fixed,
    running_server,
)

HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}
MAX_EXAMPLES = fuzz_budget()
"""Per operation; tests/api/test_fuzz.py goes further (odd JSON, forms, a stateful walk)."""

schema = schemathesis.openapi.from_path(OPENAPI_PATH)


def load_document() -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI_PATH.read_text())
    assert isinstance(document, dict)
    return document


def test_document_is_valid_openapi_3_1() -> None:
    document = load_document()
    assert document["openapi"].startswith("3.1")
    validate(document, cls=OpenAPIV31SpecValidator)


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in HTTP_METHODS}


def routed_operations() -> set[tuple[str, str]]:
    found = set()
    for route in ROUTES:
        if isinstance(route, Route) and route.path.startswith("/v1/"):
            found |= {(m, route.path) for m in (route.methods or ()) if m != "HEAD"}
    return found


def test_document_names_every_v1_route_and_no_other() -> None:
    assert documented_operations(load_document()) == routed_operations()


def test_errors_use_the_reference_shape() -> None:
    """Every JSON 4xx/5xx response of every operation is the Error shape (or extends it)."""
    document = load_document()
    responses = document["components"]["responses"]
    error_refs = {"#/components/schemas/Error", "#/components/schemas/ValidationError",
                  "#/components/schemas/DuplicateError"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            assert "security" in operation or path.startswith("/v1/"), (method, path)
            for status, response in operation["responses"].items():
                if not re.fullmatch(r"[45]\d\d", status):
                    continue
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[1]]
                content = response["content"]
                if "application/json" in content:
                    assert content["application/json"]["schema"]["$ref"] in error_refs, \
                        (method, path, status)
    validation = document["components"]["schemas"]["ValidationError"]["allOf"][1]
    assert validation["required"] == ["errors"]
    action = document["components"]["schemas"]["Action"]["properties"]["type"]["enum"]
    assert action == ["upgrade", "verify", "wait", "redirect"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def _examples(holder: dict[str, Any]) -> list[Any]:
    """The example values of a media type or parameter (``example`` or ``examples``)."""
    found = [holder["example"]] if "example" in holder else []
    return found + [e["value"] for e in holder.get("examples", {}).values()]


def _deref(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with a ``$ref`` (to ``#/components/...``) followed."""
    while "$ref" in item:
        target: Any = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        item = target
    return item


def _check_example(document: dict[str, Any], schema: dict[str, Any], value: Any,
                   where: str) -> None:
    """An example must be valid against its own schema: the docs may not show a shape the
    server would never send (refs resolve against the document's components)."""
    wrapper = {"components": document["components"], "allOf": [schema]}
    errors = [e.message for e in jsonschema.Draft202012Validator(wrapper).iter_errors(value)]
    assert not errors, (where, errors)


def test_every_operation_shows_request_and_response_examples() -> None:
    """The interactive docs (/api) show these: every request body and every successful or
    error JSON answer has an example (the reference's, where it gives one), each valid."""
    document = load_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            where = f"{method.upper()} {path}"
            body = operation.get("requestBody")
            if body is not None:
                for media_type, content in body["content"].items():
                    values = _examples(content)
                    assert values, f"{where}: no request example for {media_type}"
                    for value in values:
                        _check_example(document, content["schema"], value, where)
            for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
                for value in _examples(parameter):
                    _check_example(document, parameter["schema"], value,
                                   f"{where} {parameter['name']}")
            for status, response in operation["responses"].items():
                response = _deref(document, response)
                for media_type, content in response.get("content", {}).items():
                    values = _examples(content)
                    assert values, f"{where} {status}: no example for {media_type}"
                    for value in values:
                        _check_example(document, content["schema"], value, f"{where} {status}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("openapi") / "data"
    with running_server(data_dir, {"IMGPRO_RATE_LIMITS": "off"}) as running:
        yield running


@pytest.fixture(scope="module")
def auth(server: RunningServer) -> dict[str, str]:
    """A fresh key's header: schemathesis exercises the authenticated paths with it."""
    email = f"schemathesis-{uuid.uuid4().hex[:10]}@example.com"
    response = httpx.post(f"{server.url}/v1/keys", json={"email": email}, timeout=30)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


def test_served_document_is_the_file(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/openapi.yaml", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.content == OPENAPI_PATH.read_bytes()


def test_real_responses_match_document(server: RunningServer, auth: dict[str, str],
                                       corpus: list[CorpusImage]) -> None:
    """Successful answers too: generated data rarely makes a valid image, so walk the API once
    with a real photo and check every answer (media, duplicate, list, usage...) against the
    document. The media stay, so the generated list requests below also see real items."""
    photo = next(i for i in corpus if i.format == "jpeg" and i.bytes < 1_000_000)
    seen: list[tuple[str, str, int]] = []

    def check(method: str, path: str, response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, (method, path, response.text[:300])
        response.request.read()  # multipart bodies stream; the validator wants them read
        schema[path][method].validate_response(response)
        seen.append((method, path, status))
        return response.json() if "json" in response.headers.get("content-type", "") else None

    with httpx.Client(base_url=server.url, timeout=60) as anon, \
            httpx.Client(base_url=server.url, timeout=60, headers=auth) as http:
        file = {"file": (photo.path.name, photo.data)}
        media = check("POST", "/v1/upload", anon.post("/v1/upload", files=file), 201)
        assert "upgrade" in media and "expires_at" in media
        fields = {"external_id": f"ext-{uuid.uuid4().hex[:8]}", "namespace": "openapi-test",
                  "tags": "a,b", "author": "Jane"}
        media = check("POST", "/v1/upload", http.post("/v1/upload", files=file, data=fields), 201)
        dup = check("POST", "/v1/upload", http.post("/v1/upload", files=file, data=fields), 409)
        assert dup["media"]["id"] == media["id"]
        check("POST", "/v1/upload", http.post("/v1/upload", files={"file": ("x.txt", b"hi")}),
              400)
        check("POST", "/v1/import", http.post("/v1/import", json={}), 400)
        item = f"/v1/media/{media['id']}"
        check("GET", "/v1/media/{id}", http.get(item), 200)
        check("GET", "/v1/media/{id}", anon.get(item), 200)
        check("PATCH", "/v1/media/{id}",
              http.patch(item, json={"name": "renamed", "metadata": {"author": None}}), 200)
        check("PATCH", "/v1/media/{id}", http.patch(item, json={"namespace": "Bad Name"}), 422)
        listed = check("GET", "/v1/media", http.get("/v1/media", params={"limit": 1}), 200)
        assert listed["items"] and listed["has_more"] in (True, False)
        check("GET", "/v1/media", anon.get("/v1/media"), 401)
        check("GET", "/v1/usage", http.get("/v1/usage"), 200)
        check("GET", "/v1/namespaces", http.get("/v1/namespaces"), 200)
        check("PATCH", "/v1/media/batch",
              http.patch("/v1/media/batch", json={"ids": [media["id"]],
                                                  "update": {"tags": "c", "tag_mode": "add"}}), 200)
        extra = check("POST", "/v1/upload", http.post("/v1/upload", files=file), 201)
        check("DELETE", "/v1/media/batch",
              http.request("DELETE", "/v1/media/batch", json={"ids": [extra["id"]]}), 200)
        check("GET", "/v1/verify", anon.get("/v1/verify", params={"token": "nope"}), 400)
        check("POST", "/v1/verify", anon.post("/v1/verify", data={"token": "nope"}), 400)
        check("GET", "/v1/upgrade", anon.get("/v1/upgrade"), 200)
        check("POST", "/v1/keys", anon.post("/v1/keys", json={"email": "nope"}), 422)
        gone = check("POST", "/v1/upload", http.post("/v1/upload", files=file), 201)
        check("DELETE", "/v1/media/{id}", http.delete(f"/v1/media/{gone['id']}"), 200)
        check("DELETE", "/v1/media/{id}", http.delete(f"/v1/media/{gone['id']}"), 404)
    assert {(m, p) for m, p, _ in seen} == documented_operations(load_document())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=fuzz_is_fixed(),
          suppress_health_check=list(HealthCheck))
def test_server_conforms_to_document(case: Any, server: RunningServer,
                                     auth: dict[str, str]) -> None:
    case.call_and_validate(
        base_url=server.url, headers=auth, timeout=60,
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
    )
