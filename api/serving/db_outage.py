"""The database away, seen from the /v1 app: 503 + Retry-After, and one more try for reads.

``DatabaseUnavailable`` (``api.db.availability``) becomes the reference's error shape with
``service_unavailable`` and a ``wait`` action, never a 500. Handlers that only read are
wrapped by ``retry_reads``: if the connection broke while they ran, the whole handler runs
once more (a read changes nothing, and its response was not sent yet). Connecting itself is
retried inside ``Database``, so a handler that failed to connect is not run again here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from api.db import DatabaseUnavailable, is_unavailable
from api.errors import ServiceUnavailable, error_response

log = logging.getLogger("imgpro.api")

RETRY_AFTER = 3
"""Seconds clients are told to wait: a pooled reconnect or a failover takes about that."""

Endpoint = Callable[[Request], Awaitable[Response]]


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("The database is unavailable right now; try again shortly.",
                              retry_after=RETRY_AFTER)


def retry_reads(endpoint: Endpoint) -> Endpoint:
    """Run a read-only handler once more when its database connection broke mid-way."""

    @functools.wraps(endpoint)
    async def once_more(request: Request) -> Response:
        try:
            return await endpoint(request)
        except DatabaseUnavailable as error:
            if error.at_connect:
                raise
            log.warning("%s %s: %s; trying once more", request.method, request.url.path, error)
        return await endpoint(request)

    return once_more


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """Exception handler of the /v1 app for DatabaseUnavailable (logged without traceback)."""
    log.warning("%s %s answered 503: %s", request.method, request.url.path, exc)
    error = unavailable()
    request.state.error_code = error.code
    return error_response(error)


def sqlalchemy_error(fallback: Callable[[Request, Exception], Awaitable[Response]]) -> Callable[
        [Request, Exception], Awaitable[Response]]:
    """A handler for driver errors that escaped ``Database`` unjudged: an outage is a 503,
    anything else (a constraint nobody caught, a bad query) stays a logged 500."""

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SQLAlchemyError)
        if is_unavailable(exc):
            return await database_unavailable(request, exc)
        return await fallback(request, exc)

    return handler
