"""A request cut short by shutdown answers ``503`` + ``Retry-After`` in the reference's shape.

On SIGTERM uvicorn lets in-flight requests run for ``IMGPRO_SHUTDOWN_TIMEOUT`` seconds, then
cancels their tasks. A cancelled task is no exception the app's handlers see
(``CancelledError`` is a ``BaseException``), so uvicorn itself answered: a plain-text
``500 Internal Server Error`` and a logged traceback, for what is no bug, only a node going
away. Here the cancellation of a request whose answer has not started becomes the 503 a
client (or its load balancer) retries elsewhere, and the task ends normally: it was being
cancelled only so that it would end. An answer already under way (an original streaming out)
cannot be changed any more; it is cut off, logged in one line.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from api.serving.observability import loggable
from transformer.origin.error_body import action, error_json
from transformer.origin.responses import Receive, Scope, Send

log = logging.getLogger("imgpro.api")

RETRY_AFTER = 2
"""Seconds: long enough for a load balancer to notice the node is gone, short for a client."""

_BODY = error_json("service_unavailable", "The server is shutting down; send the request again.",
                   action=action("wait", seconds=RETRY_AFTER))
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"retry-after", str(RETRY_AFTER).encode()),
    (b"cache-control", b"no-store"),
    (b"connection", b"close"),
]


class AnswerCancelled:
    """ASGI wrapper: a cancelled HTTP request gets the 503 above if nothing was sent yet."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # The HTTP protocol's memory-hit path asks the outermost app for this (no ASGI cycle,
        # nothing to cancel): hand it through.
        self.answer_from_memory = getattr(app, "answer_from_memory", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if started:
                log.warning("shutdown cut off the answer to %s %s", scope["method"],
                            loggable(scope["path"]))
                return
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})

