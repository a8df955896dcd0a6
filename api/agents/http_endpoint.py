"""``/mcp``: the MCP tools over streamable HTTP, mounted by ``imgpro serve`` in the API role.

- **Authentication** is the API's own: every request needs ``Authorization: Bearer <API key>``,
  checked by ``api.auth.optional_key`` before anything of MCP runs; a missing, unknown or
  pending key is ``401`` in the reference's error shape (plus ``WWW-Authenticate: Bearer``).
  Abilities are checked per call by the API (a read-only key can list but not upload).
- **In-process calls.** A tool's API call goes into the API app through ``httpx.ASGITransport``
  with the caller's key, not over a loopback socket: no address to find (``--port 0``, a
  proxy in front, ``0.0.0.0``), no second trip through the HTTP stack, and still exactly the
  API's auth, quotas, validation and errors, since it is the same app.
- **Stateless.** Each POST is a whole MCP exchange (``stateless_http``, JSON answers), so with
  ``--workers N`` or several API nodes any process can answer any request; nothing is kept
  between requests, and GET (a stream for server-initiated messages) and DELETE (ending a
  session) are ``405``.
- **Lazy.** The SDK (~0.3 s and ~26 MB per process) is imported, and its session manager
  started, on the first authenticated ``/mcp`` request, so workers that never see one, the
  CDN role and the supervisor never load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import TYPE_CHECKING

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from api.auth import optional_key
from api.errors import ApiError, MethodNotAllowed, Unauthorized, error_response
from api.rules.plans import MB

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from api.agents.api_client import ImgproApi

PATH = "/mcp"
MAX_FILE_BYTES = 70 * MB
MAX_BODY_BYTES = math.ceil(MAX_FILE_BYTES / 3) * 4 + 1 * MB
"""A JSON-RPC request carrying the largest upload the API takes, as base64, plus room for
the other fields (the SDK's default of 4 MiB would refuse images the API accepts)."""
INTERNAL_BASE = "http://imgpro.internal"
"""The base URL of in-process calls; never resolved (media URLs come from the settings)."""


class McpEndpoint:
    """The ASGI app answering ``/mcp``; ``close()`` stops its session manager at shutdown."""

    def __init__(self, api_app: Starlette) -> None:
        self.api_app = api_app
        self._manager: StreamableHTTPSessionManager | None = None
        self._start_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            # Stateless: no session to resume or end (DELETE) and no server-initiated messages
            # to stream (GET), which the spec lets a server refuse with 405.
            refusal = MethodNotAllowed("MCP here is stateless: send each message as a POST.")
            await error_response(refusal, {"Allow": "POST"})(scope, receive, send)
            return
        try:
            if await optional_key(Request({**scope, "app": self.api_app})) is None:
                raise Unauthorized("MCP needs an API key: 'Authorization: Bearer <API key>'.")
        except ApiError as error:
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
            await error_response(error, headers)(scope, receive, send)
            return
        manager = await self._started()
        await manager.handle_request(scope, receive, send)

    def _api_for(self, ctx: Context) -> ImgproApi:
        """The API as the caller of this MCP request (its bearer key, checked above) sees it."""
        from api.agents.api_client import ImgproApi

        header = (ctx.headers or {}).get("authorization", "")
        scheme, _, token = header.strip().partition(" ")
        assert self._http is not None
        return ImgproApi(self._http, token.strip() if scheme.lower() == "bearer" else None,
                         "this server")

    async def _started(self) -> StreamableHTTPSessionManager:
        if self._manager is not None:
            return self._manager
        async with self._start_lock:
            if self._manager is None:
                self._manager = await self._start()
        return self._manager

    async def _start(self) -> StreamableHTTPSessionManager:
        from mcp.server.transport_security import TransportSecuritySettings

        from api.agents.tools import build_server

        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.api_app),
                                       base_url=INTERNAL_BASE, timeout=None)
        server = build_server(self._api_for, local_files=False)
        # DNS-rebinding checks (Host/Origin allow-lists) guard servers that trust whoever can
        # reach them; every request here carries a key, and Host is whatever the proxy says.
        server.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, json_response=True,
            max_request_body_size=MAX_BODY_BYTES,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = server.session_manager
        ready = asyncio.Event()
        self._runner = asyncio.create_task(self._run(manager, ready), name="mcp-session-manager")
        await ready.wait()
        if self._runner.done():
            self._runner.result()  # it failed to start: raise that here
        return manager

    async def _run(self, manager: StreamableHTTPSessionManager, ready: asyncio.Event) -> None:
        """Keeps the manager's task group (where each request's MCP exchange runs) open."""
        try:
            async with manager.run():
                ready.set()
                await self._stop.wait()
        finally:
            ready.set()

    async def close(self) -> None:
        self._stop.set()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner
        if self._http is not None:
            await self._http.aclose()

