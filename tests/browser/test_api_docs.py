"""The interactive API docs (/api) in a real headless Chromium: Swagger UI, served by us under the
page's Content-Security-Policy, lists every operation of api/openapi.yaml with the reference's
examples, and a try-it-out call of GET /v1/usage with a pasted key answers 200."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api.routes.pages import OPENAPI_PATH
from tests.browser.test_pages import watch_errors
from tests.conftest import RunningServer, running_server

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("docs") / "data") as running:
        yield running


def operations() -> list[tuple[str, str, str, str]]:
    """(tag, operationId, method, path) of every operation in the document."""
    document = yaml.safe_load(OPENAPI_PATH.read_text())
    return [(op["tags"][0], op["operationId"], method, path)
            for path, item in document["paths"].items()
            for method, op in item.items() if method in HTTP_METHODS]


def test_docs_list_every_operation_and_try_it_out_works(server: RunningServer, browser: Any,
                                                        artifacts: Path) -> None:
    created = httpx.post(f"{server.url}/v1/keys", timeout=30,
                         json={"email": f"docs-{uuid.uuid4().hex[:10]}@example.com"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors = watch_errors(page)
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url)
                if not r.url.startswith((server.url, "data:")) else None)
        response = page.goto(server.url + "/api")
        assert response is not None and response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]

        # Every operation of the document is listed, under its tag, with method and path.
        expected = operations()
        assert len(expected) == 14  # test_openapi holds the document to the routes table
        page.wait_for_selector(".opblock", timeout=60_000)
        for tag, operation_id, method, path in expected:
            block = page.locator(f"#operations-{tag}-{operation_id}")
            assert block.count() == 1, (tag, operation_id)
            assert method.upper() in block.locator(".opblock-summary-method").inner_text()
            assert block.locator(".opblock-summary-path").get_attribute("data-path") == path
        assert page.locator(".opblock").count() == len(expected)
        page.screenshot(path=artifacts / "api-docs.png", full_page=True)

        # The reference's examples are shown: a request body and a response.
        keys_block = page.locator("#operations-keys-createKey")
        keys_block.locator(".opblock-summary-control").click()
        keys_block.locator(".body-param__example, .highlight-code").first.wait_for()
        assert "you@company.com" in keys_block.inner_text()
        assert "img_live_abc123" in keys_block.inner_text()

        # Authorize with a key, as a person pastes it into the dialog.
        page.click(".auth-wrapper .authorize")
        dialog = page.locator(".modal-ux")
        dialog.locator("input").first.fill(key)
        dialog.locator(".auth-btn-wrapper .authorize").click()
        dialog.locator(".btn-done").click()

        # Try it out: GET /v1/usage goes to this server with the key and answers 200.
        usage = page.locator("#operations-account-getUsage")
        usage.locator(".opblock-summary-control").click()
        usage.locator(".responses-wrapper .highlight-code").first.wait_for()
        assert '"uploads_used": 42' in usage.inner_text()  # the reference's example
        usage.locator(".try-out__btn").click()
        with page.expect_response(lambda r: r.url.endswith("/v1/usage")) as answered:
            usage.locator(".execute").click()
        assert answered.value.status == 200
        assert answered.value.request.headers["authorization"] == f"Bearer {key}"
        status = usage.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip() == "200"
        assert '"plan": "free"' in usage.locator(".live-responses-table").inner_text()
        page.screenshot(path=artifacts / "api-docs-try-it-out.png", full_page=True)

        page.set_viewport_size({"width": 375, "height": 740})
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        page.screenshot(path=artifacts / "api-docs-phone.png")
        assert errors == [] and outside == []
    finally:
        context.close()


def test_docs_use_the_key_the_browser_keeps(server: RunningServer, browser: Any) -> None:
    """A key saved on the upload page or the library is already authorized in the docs."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.evaluate("() => localStorage.setItem('imgpro.apiKey', 'img_live_kept')")
        page.goto(server.url + "/api")
        page.wait_for_selector("#docs-key", state="visible", timeout=60_000)
        assert "img_live_kept"[:13] in page.inner_text("#docs-key")
        usage = page.locator("#operations-account-getUsage")
        usage.locator(".opblock-summary-control").click()
        usage.locator(".try-out__btn").click()
        with page.expect_request(lambda r: r.url.endswith("/v1/usage")) as sent:
            usage.locator(".execute").click()
        assert sent.value.headers["authorization"] == "Bearer img_live_kept"
    finally:
        context.close()
