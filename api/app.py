"""Composes the ASGI application for a role: ``cdn`` (transform origin), ``api``, or ``all``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from api.settings import Settings
from transformer.store import open_store


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    store = open_store(settings.effective_storage_url, s3_endpoint_url=settings.s3_endpoint_url)
    api_app = None
    if settings.role in ("all", "api"):
        from api.v1 import build_api_app

        api_app = build_api_app(settings, store, purge=None)

    async def healthz(request: Request) -> Response:
        if api_app is not None and not api_app.state.ready:
            return Response(b'{"status":"starting"}', status_code=503,
                            media_type="application/json")
        return Response(b'{"status":"ok"}', media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(store.close)
            if api_app is not None:
                # Starlette does not run a mounted app's lifespan: enter it here.
                await stack.enter_async_context(api_app.router.lifespan_context(api_app))
            yield

    routes: list[Route | Mount] = [Route("/healthz", healthz, methods=["GET", "HEAD"])]
    if api_app is not None:
        routes.append(Mount("/", app=api_app))
    return Starlette(routes=routes, lifespan=lifespan)
