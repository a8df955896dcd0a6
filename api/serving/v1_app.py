"""``build_api_app``: the /v1 API, the one-click link pages and the viewer, as one ASGI app.

The composing app (api/app.py) mounts it and must run its lifespan, which opens the
database, applies migrations (once, even with several processes), loads the signing secret
and starts the retention sweeper. Errors of every kind leave here in the reference's JSON
shape: ApiError subclasses, unknown routes (404), wrong methods (405) and, for real bugs
only, a logged 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.context import ApiContext, Purge
from api.db import Database
from api.errors import ApiError, InternalError, error_response, http_exception_response
from api.lifecycle.retention import run_sweeper
from api.routes import batch, import_, keys, media, upload, usage, verification, viewer
from api.rules.signing import Signer, load_secret
from api.serving.observability import loggable
from api.settings import Settings
from transformer.originals import OriginalsStore

log = logging.getLogger("imgpro.api")

ROUTES = [
    Route("/v1/keys", keys.create_key, methods=["POST"]),
    Route("/v1/upload", upload.upload, methods=["POST"]),
    Route("/v1/import", import_.import_, methods=["POST"]),
    Route("/v1/media", media.list_handler, methods=["GET"]),
    Route("/v1/media/batch", batch.batch_update, methods=["PATCH"]),
    Route("/v1/media/batch", batch.batch_delete, methods=["DELETE"]),
    Route("/v1/media/{id}", media.get_handler, methods=["GET"]),
    Route("/v1/media/{id}", media.patch_handler, methods=["PATCH"]),
    Route("/v1/media/{id}", media.delete_handler, methods=["DELETE"]),
    Route("/v1/usage", usage.usage, methods=["GET"]),
    Route("/v1/namespaces", usage.namespaces, methods=["GET"]),
    Route("/v1/verify", verification.verify, methods=["GET"]),
    Route("/v1/verify", verification.confirm, methods=["POST"]),
    Route("/v1/upgrade", verification.upgrade, methods=["GET"]),
    Route("/{id}", viewer.viewer, methods=["GET"]),
]


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    request.state.error_code = exc.code  # read by the metrics of rejected uploads
    return error_response(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, loggable(request.url.path),
              exc_info=exc)
    return error_response(InternalError("Something went wrong on our side."))


def build_api_app(settings: Settings, store: OriginalsStore,
                  purge: Purge | None = None) -> Starlette:
    """The API app; ``purge(team_hash, media_id)`` drops the CDN's cached renditions."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.effective_database_url)
        try:
            await db.migrate()
            ctx = ApiContext(settings, db, store, purge, Signer(load_secret(settings)))
            app.state.api = ctx
            sweeper = asyncio.create_task(run_sweeper(ctx, settings.retention_sweep_seconds))
            app.state.ready = True
            try:
                yield
            finally:
                app.state.ready = False
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
        finally:
            await db.close()

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=[*_cors(settings), Middleware(IgnoreTrailingSlash)],
        exception_handlers={ApiError: _api_error, HTTPException: http_exception_response,
                            Exception: _unexpected},
    )
    app.state.ready = False
    return app


EXPOSED_HEADERS = [
    "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
    "X-RateLimit-Limit-Daily", "X-RateLimit-Remaining-Daily", "X-Monthly-Uploads-Used",
    "X-Monthly-Uploads-Limit", "X-Monthly-Uploads-Remaining", "X-Storage-Used",
    "X-Storage-Limit", "X-Storage-Remaining", "X-Request-Id",
]
"""Headers a browser page may read from a cross-origin answer (the limits, mostly)."""


def _cors(settings: Settings) -> list[Middleware]:
    """Browser apps on other origins call the API with a bearer key, never cookies, so any
    origin may be allowed without credentials; operators can narrow or close it."""
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if not origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                       allow_methods=["GET", "POST", "PATCH", "DELETE"],
                       allow_headers=["Authorization", "Content-Type"],
                       expose_headers=EXPOSED_HEADERS, max_age=86_400)]


class IgnoreTrailingSlash:
    """``/v1/media/`` is ``/v1/media``: Starlette would answer a 307 with an empty body, whose
    absolute Location (built from Host) is wrong behind a TLS proxy and which clients that do
    not follow redirects for POST/PATCH/DELETE cannot use."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            raw = scope.get("raw_path") or path.encode()
            scope = {**scope, "path": path.rstrip("/") or "/", "raw_path": raw.rstrip(b"/") or b"/"}
        await self.app(scope, receive, send)
