"""Composes the ASGI application for a role: ``cdn`` (transform origin), ``api``, or ``all``.

CDN paths (``/{team_hash}/{uid}.{ext}``) go straight to the transform origin's raw ASGI app,
ahead of any routing or middleware, so the hot path stays short; everything else goes to the
Starlette app that holds the API, the pages, ``/mcp`` (MCP for agents), the viewer and the
operational routes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

import transformer
from api.errors import http_exception_response
from api.lifecycle.purge import purge_renditions
from api.serving.metrics_access import MetricsAccess
from api.serving.observability import Observed, access_log_to_stdout, mark_worker_gone
from api.serving.readiness import readiness
from api.serving.shutdown_answer import AnswerCancelled
from api.serving.store_startup import prepare_originals_store, prepare_rendition_store
from api.settings import Settings
from cache import DiskCache, MemoryCache, RenditionCache
from transformer.origin.app import CdnOrigin
from transformer.origin.config import OriginConfig
from transformer.origin.request import CDN_PATH
from transformer.origin.responses import Answer, Receive, Scope, Send
from transformer.originals import OriginalsStore, open_store
from transformer.renditions import RenditionStoreConfig, S3RenditionStore

MB = 1024 * 1024


def build_rendition_store(settings: Settings) -> S3RenditionStore | None:
    """The cluster's shared rendition store, when ``IMGPRO_RENDITION_STORE_URL`` is set."""
    if not settings.rendition_store_url:
        return None
    return S3RenditionStore(RenditionStoreConfig(
        url=settings.rendition_store_url,
        endpoint_url=settings.effective_rendition_store_endpoint_url,
        timeout=settings.rendition_store_timeout,
        conditional=settings.rendition_store_conditional,
        lease_seconds=settings.rendition_store_lease_seconds,
        breaker_failures=settings.rendition_store_breaker_failures,
        breaker_seconds=settings.rendition_store_breaker_seconds,
        write_queue=settings.rendition_store_write_queue,
    ))


def build_cdn(settings: Settings, store: OriginalsStore,
              renditions: S3RenditionStore | None = None) -> CdnOrigin:
    cache = RenditionCache(
        MemoryCache(settings.memory_cache_mb * MB),
        DiskCache(settings.data_dir / "cache", settings.disk_cache_mb * MB),
        renditions,
    )
    config = OriginConfig(
        threads=settings.threads,
        queue_limit=settings.queue_limit,
        max_pixels=settings.max_pixels or transformer.DEFAULT_MAX_PIXELS,
        transform_timeout=settings.transform_timeout,
        revalidate_seconds=settings.revalidate_seconds,
        refine=settings.refine,
        provisional_max_age=settings.provisional_max_age,
        refine_queue=settings.refine_queue,
        shared_refine_grace=settings.rendition_store_refine_grace,
    )
    return CdnOrigin(store, cache, config)


class RoleApp:
    """Sends CDN paths to the origin and the rest to the Starlette app."""

    def __init__(self, cdn: CdnOrigin | None, app: Starlette) -> None:
        self.cdn = cdn
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cdn is not None and scope["type"] == "http" and CDN_PATH.match(scope["path"]):
            await self.cdn(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def answer_from_memory(self, scope: Scope) -> Answer | None:
        """A CDN memory hit answered without the ASGI cycle (see ``api.serving.http_protocol``)."""
        return self.cdn.answer_from_memory(scope) if self.cdn is not None else None


def create_app(settings: Settings | None = None) -> Observed:
    settings = settings or Settings()
    store = open_store(settings.effective_storage_url, s3_endpoint_url=settings.s3_endpoint_url)
    renditions = build_rendition_store(settings)
    cdn = build_cdn(settings, store, renditions) if settings.role in ("all", "cdn") else None
    api_app = None
    mcp = None
    if settings.role in ("all", "api"):
        from api.agents.http_endpoint import McpEndpoint  # imports no MCP SDK until used
        from api.serving.v1_app import build_api_app

        purge = purge_renditions(cdn.purge if cdn is not None else None, renditions)
        api_app = build_api_app(settings, store, purge=purge)
        mcp = McpEndpoint(api_app)

    async def healthz(request: Request) -> Response:
        # Liveness only: the process answers. Whether it can reach its database and store is
        # /readyz (api.serving.readiness).
        if api_app is not None and not api_app.state.ready:
            return Response(b'{"status":"starting"}', status_code=503,
                            media_type="application/json")
        # The pid tells which worker answered: a load balancer or benchmark can wait until
        # every worker is up instead of pinning all its connections to the first one.
        return Response(b'{"status":"ok","pid":%d}' % os.getpid(), media_type="application/json")

    async def readyz(request: Request) -> Response:
        if api_app is None:
            return await readiness(store, None)
        ctx = getattr(api_app.state, "api", None)
        if ctx is None or not api_app.state.ready:
            return await readiness(store, None, starting=True)
        return await readiness(store, ctx.db.ping)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(mark_worker_gone)
            stack.push_async_callback(store.close)
            await prepare_originals_store(store, settings)  # S3: the bucket exists (helper scale)
            if renditions is not None:
                stack.push_async_callback(renditions.close)  # after the CDN: its last writes
                await prepare_rendition_store(renditions, settings)
            if cdn is not None:
                await cdn.start()
                stack.push_async_callback(cdn.close)
            if api_app is not None:
                # Starlette does not run a mounted app's lifespan: enter it here.
                await stack.enter_async_context(api_app.router.lifespan_context(api_app))
            if mcp is not None:
                stack.push_async_callback(mcp.close)  # before the API's database closes
            yield

    routes: list[Route | Mount] = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
    ]
    if api_app is not None and mcp is not None:
        from api.agents.http_endpoint import PATH as MCP_PATH
        from api.routes.pages import web_routes  # pages, their files, /openapi.yaml (helper ux)

        routes += web_routes(settings)  # before the viewer's catch-all /{id}
        routes += [Route(path, mcp) for path in (MCP_PATH, MCP_PATH + "/")]  # MCP, any method
        routes.append(Mount("/", app=api_app))
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_exception_response})
    access_log = access_log_to_stdout() if settings.access_log else None
    bind = settings.metrics_bind
    metrics = MetricsAccess(RoleApp(cdn, app), token=settings.metrics_token,
                            metrics_port=bind[1] if bind else None)
    return Observed(AnswerCancelled(metrics), log_format=settings.log_format,
                    access_log=access_log)
