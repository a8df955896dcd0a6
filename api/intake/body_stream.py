"""A request body read with time limits, so a stalled client cannot hold memory and a slot.

uvicorn times out idle keep-alive connections but not a body that stops arriving: an upload
that sends 19 MB and then nothing kept its buffer and its connection for as long as the client
liked, and the memory was never released (hostile-input audit). Every body the
API reads goes through ``body_chunks``: no byte for ``IDLE_SECONDS`` or the whole body taking
longer than ``TOTAL_SECONDS`` is a 408 that closes the connection and drops what was read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from api.errors import ApiError, RequestTimeout

IDLE_SECONDS = 30.0
"""Default longest wait for the next chunk (a phone on a bad network sends something in 30 s)."""
TOTAL_SECONDS = 600.0
"""Longest whole body: 70 MB (the largest upload) at ~1 Mbit/s, so a 1-byte-per-29-s drip ends."""


async def body_chunks(request: Request, *, total: float = TOTAL_SECONDS) -> AsyncIterator[bytes]:
    """``request.stream()`` with an idle and a total time limit (RequestTimeout, 408).

    The idle limit is the app's ``IMGPRO_BODY_IDLE_TIMEOUT`` when it has one, else
    ``IDLE_SECONDS``.
    """
    ctx = getattr(request.app.state, "api", None)
    idle = ctx.settings.body_idle_timeout if ctx is not None else IDLE_SECONDS
    stream = request.stream().__aiter__()
    ends = time.monotonic() + total
    while True:
        wait = min(idle, ends - time.monotonic())
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout("The request body stopped arriving; send it again.") from None
        yield chunk


DRAIN_BYTES = 1024 * 1024
"""The largest body (by its Content-Length) that a refusal reads and drops before answering."""
DRAIN_SECONDS = 10.0


async def drain_small_body(request: Request, limit: int = DRAIN_BYTES) -> bool:
    """Read and drop an unread body of at most ``limit`` bytes; True if it was all read.

    A refusal sent before the body is read (a quota already used up, an hourly limit) used to
    close the connection at once. The client is usually still sending, and a socket closed with
    unread bytes is reset, which often takes the answer with it: the client saw a dropped
    connection, not the 413 and its upgrade link. Reading a small body first lets the answer
    arrive (and the connection stay open); a large one is still refused by closing.
    """
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > limit:
        return False
    try:
        async for _ in body_chunks(request, total=DRAIN_SECONDS):
            pass
    except (ApiError, ClientDisconnect):
        return False
    return True
