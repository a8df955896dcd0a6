"""Composes the ASGI application for a role: ``cdn`` (transform origin), ``api``, or ``all``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.settings import Settings


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    return Starlette(routes=[Route("/healthz", healthz, methods=["GET", "HEAD"])])
