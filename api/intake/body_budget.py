"""A byte budget for upload and import bodies in flight, per process.

Every body the API receives (an upload's multipart stream, an import's download) reserves its
expected size here before the first byte is read: the declared ``Content-Length``, or the
caller's file limit when none is declared. While the budget is spent, new bodies wait in
arrival order for at most ``wait`` seconds and are then refused with 503 + ``Retry-After``
(the client's bytes stay in its socket meanwhile: TCP holds them back, we hold nothing). A
body larger than the whole budget may still be received, alone.

The budget counts bytes wherever they are kept (``api.intake.spool``: memory for small bodies,
a temporary file for large ones), because a temporary file may live on a tmpfs and because
what follows the read (the probe's page cache, S3 part buffers) grows with the bodies in
flight. It is the transform library's decode memory budget for the intake side.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from api.errors import ServiceUnavailable

RESERVED = Gauge("imgpro_body_budget_reserved_bytes",
                 "Bytes of upload/import bodies in flight (reserved from the body budget).",
                 multiprocess_mode="livesum")
REFUSED = Counter("imgpro_body_budget_refusals_total",
                  "Bodies refused (503) after waiting for room in the body budget.")

RETRY_AFTER = 5
"""Seconds a refused client is told to wait: about one large body's time to arrive."""


class BodyBudgetExhausted(ServiceUnavailable):
    """503: no room for another body within the wait."""

    def __init__(self) -> None:
        super().__init__("The server is receiving too many large uploads at once; "
                         "try again shortly.", retry_after=RETRY_AFTER)


@dataclass(eq=False)
class _Waiter:
    nbytes: int
    ready: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop()
                                        .create_future())


class BodyBudget:
    """Counting reservations of bytes against a fixed capacity, granted in arrival order."""

    def __init__(self, capacity: int, wait: float) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.wait = wait
        self.reserved = 0
        self._queue: collections.deque[_Waiter] = collections.deque()

    def _fits(self, nbytes: int) -> bool:
        return self.reserved == 0 or self.reserved + nbytes <= self.capacity

    async def take(self, nbytes: int) -> None:
        """Reserve ``nbytes``; waits at most ``wait`` seconds, then BodyBudgetExhausted."""
        if nbytes <= 0:
            return
        if not self._queue and self._fits(nbytes):
            self._grant(nbytes)
            return
        waiter = _Waiter(nbytes)
        self._queue.append(waiter)
        try:
            async with asyncio.timeout(self.wait):
                await asyncio.shield(waiter.ready)
        except TimeoutError:
            if waiter.ready.done():  # granted just as the wait ended: keep it
                return
            self._queue.remove(waiter)
            self._wake()  # a smaller body behind this one may fit now
            REFUSED.inc()
            raise BodyBudgetExhausted() from None
        except BaseException:  # cancelled (client gone, shutdown): never leak a grant
            if waiter.ready.done():
                self.give(nbytes)
            else:
                self._queue.remove(waiter)
                self._wake()
            raise

    def give(self, nbytes: int) -> None:
        """Return what ``take`` reserved."""
        if nbytes <= 0:
            return
        self.reserved -= nbytes
        RESERVED.dec(nbytes)
        self._wake()

    def _grant(self, nbytes: int) -> None:
        self.reserved += nbytes
        RESERVED.inc(nbytes)

    def _wake(self) -> None:
        # First come, first served: a large body at the head is not overtaken by small ones
        # (it would wait forever under a stream of them); it waits at most ``wait`` anyway.
        while self._queue and self._fits(self._queue[0].nbytes):
            waiter = self._queue.popleft()
            self._grant(waiter.nbytes)
            waiter.ready.set_result(None)
