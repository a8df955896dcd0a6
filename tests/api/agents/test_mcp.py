"""The MCP server, driven by the MCP SDK's own client over both transports against a real
``imgpro serve`` (SQLite and PostgreSQL): ``/mcp`` over streamable HTTP with a bearer key, and
``imgpro mcp`` over stdio as a child process pointed at the server's URL.

Every tool is called for real and its effect checked through the API; then a quota error (its
upgrade action reaches the agent), an invalid key, and bad arguments (a clear tool error in the
API's shape, nothing stored).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from tests.api.conftest import ApiServer, tiny_png
from tests.conftest import ROOT

TRANSPORTS = ["http", "stdio"]
TOOLS = {"upload_image", "import_image", "list_media", "get_media", "update_media",
         "delete_media", "batch_update_media", "batch_delete_media", "get_usage",
         "list_namespaces", "cdn_urls"}


@asynccontextmanager
async def connect(api: ApiServer, transport: str, key: str | None) -> AsyncIterator[Client]:
    """An MCP session with the server as an agent host would open it."""
    if transport == "http":
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http, \
                Client(streamable_http_client(f"{api.url}/mcp", http_client=http)) as client:
            yield client
    else:
        args = ["-m", "api", "mcp", "--api", api.url, *(["--key", key] if key else [])]
        async with Client(StdioServerParameters(command=sys.executable, args=args,
                                                cwd=str(ROOT))) as client:
            yield client


async def call(client: Client, tool: str, arguments: dict[str, Any] | None = None,
               *, error: bool = False) -> dict[str, Any]:
    """Call a tool; its result must be an error exactly when ``error`` says, and its text and
    structured content must be the same JSON object."""
    result = await client.call_tool(tool, arguments or {})
    assert result.is_error is error, (tool, result.content)
    body = json.loads(result.content[0].text)
    assert result.structured_content == body
    return dict(body)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def jpeg(width: int = 480, height: int = 360, color: str = "navy") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG")
    return out.getvalue()


def listed_ids(api: ApiServer, key: str, **params: Any) -> list[str]:
    response = api.request("GET", "/v1/media", key=key, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def uploads_used(api: ApiServer, key: str) -> int:
    return int(api.request("GET", "/v1/usage", key=key).json()["uploads_used"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_tool(api: ApiServer, transport: str, tmp_path: Path) -> None:
    key = api.new_key()["key"]
    async with connect(api, transport, key) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        upload_schema = tools["upload_image"].input_schema["properties"]
        # A local path means the agent's machine: only over stdio, never the server's disk.
        assert ("path" in upload_schema) is (transport == "stdio")
        limit = tools["list_media"].input_schema["properties"]["limit"]
        assert (limit["minimum"], limit["maximum"]) == (1, 100)

        first = await call(client, "upload_image", {
            "data_base64": b64(tiny_png(40, 30, seed=1)), "filename": "first.png",
            "tags": ["hero", "homepage"], "namespace": "mcp-shop", "external_id": "ext-1",
            "metadata": {"author": "Ann", "license": "cc-by"}})
        assert first["name"] == "first.png" and first["extension"] == "png"
        assert first["tags"] == ["hero", "homepage"] and first["namespace"] == "mcp-shop"
        assert first["author"] == "Ann" and first["editable"] is True
        if transport == "stdio":
            photo = tmp_path / "second.jpg"
            photo.write_bytes(jpeg())
            second = await call(client, "upload_image", {"path": str(photo), "tags": "hero",
                                                         "public": False})
        else:
            second = await call(client, "upload_image", {"data_base64": b64(jpeg()),
                                                         "filename": "second.jpg",
                                                         "tags": "hero", "public": False})
        assert second["name"] == "second.jpg" and (second["width"], second["height"]) == (480, 360)
        assert second["public"] is False

        # import_image: the server fetches a URL; here its own CDN URL of the first image.
        imported = await call(client, "import_image", {"url": first["src"], "name": "copy",
                                                       "namespace": "mcp-blog"})
        assert imported["name"] == "copy" and imported["width"] == 40

        got = await call(client, "get_media", {"id": first["id"]})
        assert got["license"] == "cc-by" and got["external_id"] == "ext-1"
        page = await call(client, "list_media", {"tags": ["hero"], "limit": 1})
        assert [i["id"] for i in page["items"]] == [second["id"]] and page["has_more"] is True
        rest = await call(client, "list_media", {"tags": "hero", "cursor": page["cursor"]})
        assert [i["id"] for i in rest["items"]] == [first["id"]] and rest["has_more"] is False
        found = await call(client, "list_media", {"search": "SECOND"})
        assert [i["id"] for i in found["items"]] == [second["id"]]
        either = await call(client, "list_media", {"tags": "homepage,nothing", "tag_mode": "any"})
        assert [i["id"] for i in either["items"]] == [first["id"]]

        updated = await call(client, "update_media", {"id": first["id"], "update": {
            "name": "renamed", "tags": ["a", "b"], "namespace": None,
            "metadata": {"author": None, "camera": "X100"}}})
        assert updated["name"] == "renamed" and updated["tags"] == ["a", "b"]
        assert updated["namespace"] is None and "author" not in updated
        assert updated["camera"] == "X100" and updated["license"] == "cc-by"

        moved = await call(client, "batch_update_media", {
            "ids": [first["id"], second["id"]],
            "update": {"namespace": "mcp-moved", "tags": "sale", "tag_mode": "add"}})
        assert moved == {"updated": 2}
        assert set(listed_ids(api, key, namespace="mcp-moved", tags="sale")) == \
            {first["id"], second["id"]}
        namespaces = await call(client, "list_namespaces")
        counts = {n["namespace"]: n["count"] for n in namespaces["namespaces"]}
        assert counts == {"mcp-moved": 2, "mcp-blog": 1}
        usage = await call(client, "get_usage")
        assert usage["uploads_used"] == 3 and usage["plan"] == "free"
        assert usage["storage_used_bytes"] == first["filesize"] + second["filesize"] + \
            imported["filesize"]

        urls = await call(client, "cdn_urls", {"id": second["id"]})
        assert urls["original"] == second["src"] and urls["url"] == second["url"]
        assert set(urls["sizes"]) == {"s", "m", "l", "full"}
        small = urls["sizes"]["s"]
        assert (small["short_edge"], small["width"], small["height"]) == (320, 427, 320)
        assert urls["sizes"]["l"]["width"] == 480  # never upscaled
        assert set(small["urls"]) == {"jpeg", "png", "webp", "avif"}
        with httpx.Client(timeout=60) as http:
            for url in (small["urls"]["webp"], urls["sizes"]["full"]["urls"]["png"]):
                answer = http.get(url)
                assert answer.status_code == 200, url
                assert answer.headers["content-type"] == "image/" + url.split("?")[0][-4:]\
                    .lstrip(".")

        assert await call(client, "delete_media", {"id": imported["id"]}) == {"deleted": True}
        gone = await call(client, "get_media", {"id": imported["id"]}, error=True)
        assert gone["error"] == "not_found"
        by_ids = await call(client, "batch_delete_media", {"ids": [second["id"], "A" * 12]})
        assert by_ids == {"deleted": 1}
        by_namespace = await call(client, "batch_delete_media", {"namespace": "mcp-moved"})
        assert by_namespace == {"deleted": 1}
    assert listed_ids(api, key) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_quota_error_carries_the_upgrade_action(api: ApiServer, transport: str) -> None:
    created = api.new_key()
    # ApiServer.sql runs its own event loop: from an async test, in a thread.
    rows = await asyncio.to_thread(api.sql, "SELECT team_id FROM api_keys WHERE key_id = :k",
                                   k=created["key_id"])
    team = rows[0][0]
    month = datetime.now(UTC).strftime("%Y-%m")
    await asyncio.to_thread(api.sql, "INSERT INTO usage_months (team_id, month, uploads) "
                            "VALUES (:t, :m, 100)", t=team, m=month)
    async with connect(api, transport, created["key"]) as client:
        refused = await call(client, "upload_image", {"data_base64": b64(tiny_png())},
                             error=True)
        assert refused["error"] == "quota_exceeded" and refused["message"], refused
        action = refused["action"]
        assert action["type"] == "upgrade" and action["label"]
        assert "/v1/upgrade?token=" in action["url"]
        usage = await call(client, "get_usage")
        assert usage["uploads_remaining"] == 0
    assert httpx.get(action["url"], timeout=30).status_code == 200  # the link works, one click
    assert listed_ids(api, created["key"]) == []


async def test_invalid_key_is_refused_over_http(api: ApiServer) -> None:
    """Over HTTP the key is checked before any MCP: 401 in the reference's shape, no session."""
    for headers in ({"Authorization": "Bearer img_live_nope"}, {}):
        response = httpx.post(f"{api.url}/mcp", headers=headers, timeout=30,
                              json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized" and response.json()["message"]
    # The SDK's client gives up at once (its error does not carry the HTTP status).
    with pytest.raises(BaseException) as refused:
        async with connect(api, "http", "img_live_nope") as client:
            await client.list_tools()
    assert refused.group_contains(MCPError) if isinstance(refused.value, BaseExceptionGroup) \
        else isinstance(refused.value, MCPError)


async def test_http_is_stateless_post_and_takes_a_handshake_client(api: ApiServer) -> None:
    """Only POST: no session to end (DELETE) or stream to hold open (GET), as the spec allows;
    and a client of the older, handshake-first protocol works too, also at ``/mcp/``."""
    key = api.new_key()["key"]
    for method in ("GET", "DELETE"):
        response = httpx.request(method, f"{api.url}/mcp", timeout=30,
                                 headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert response.json()["error"] == "method_not_allowed"
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http, \
            Client(streamable_http_client(f"{api.url}/mcp/", http_client=http),
                   mode="legacy") as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
        assert (await call(client, "get_usage"))["uploads_used"] == 0


async def test_invalid_key_over_stdio_is_a_tool_error(api: ApiServer) -> None:
    """Over stdio the server is the API's client: each call says the key is wrong."""
    async with connect(api, "stdio", "img_live_nope") as client:
        for tool, arguments in (("get_usage", {}),
                                ("upload_image", {"data_base64": b64(tiny_png())})):
            refused = await call(client, tool, arguments, error=True)
            assert refused == {"error": "unauthorized", "message": "Invalid API key."}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bad_arguments_are_clear_errors_and_store_nothing(api: ApiServer,
                                                                transport: str) -> None:
    key = api.new_key()["key"]
    image = b64(tiny_png())
    async with connect(api, transport, key) as client:
        # Refused by the tool's schema (the reference's limits), in the API's 422 shape.
        for arguments, field in (
            ({"data_base64": image, "namespace": "Bad Name"}, "namespace"),
            ({"data_base64": image, "tags": [f"t{i}" for i in range(11)]}, "tags"),
            ({"data_base64": image, "ttl": 60}, "ttl"),
        ):
            refused = await call(client, "upload_image", arguments, error=True)
            assert refused["error"] == "validation_error"
            assert any(name.startswith(field) for name in refused["errors"]), refused
        bad_limit = await call(client, "list_media", {"limit": 500}, error=True)
        assert list(bad_limit["errors"]) == ["limit"]
        # Refused by the tool before any call.
        not_base64 = await call(client, "upload_image", {"data_base64": "not base64!"},
                                error=True)
        assert not_base64["errors"] == {"data_base64": ["data_base64 is not valid base64."]}
        neither = await call(client, "batch_delete_media", {}, error=True)
        assert neither["error"] == "validation_error"
        nothing = await call(client, "update_media", {"id": "A" * 12, "update": {}}, error=True)
        assert nothing["error"] == "validation_error"
        if transport == "stdio":
            both = await call(client, "upload_image", {"data_base64": image, "path": "/x.png"},
                              error=True)
            assert list(both["errors"]) == ["file"]
            missing = await call(client, "upload_image", {"path": "/no/such/file.png"},
                                 error=True)
            assert "Cannot read /no/such/file.png" in missing["message"]
        # Refused by the API itself, with its own codes and messages.
        text = await call(client, "upload_image", {"data_base64": b64(b"just some text")},
                          error=True)
        assert text["error"] == "unsupported_format"
        tags_too_long = await call(client, "batch_update_media", {
            "ids": ["A" * 12], "update": {"tags": "x" * 51}}, error=True)
        assert tags_too_long["error"] == "validation_error"
        usage = await call(client, "get_usage")
        assert usage["uploads_used"] == 0 and usage["storage_used_bytes"] == 0
    assert listed_ids(api, key) == []
