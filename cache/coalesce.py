"""Request coalescing: concurrent misses for one key run the producer once.

The producer runs as its own task and every caller awaits it through ``shield``: a client
that disconnects cancels only its own wait, never the work the other callers (and the cache)
are waiting for.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: str, producer: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The producer's result, and whether this caller shared another caller's run."""
        task = self._inflight.get(key)
        shared = task is not None
        if task is None:
            task = asyncio.ensure_future(producer())
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        return await asyncio.shield(task), shared

    def forget_prefix(self, prefix: str) -> None:
        """New callers for these keys start a fresh run; current waiters keep theirs."""
        for key in [key for key in self._inflight if key.startswith(prefix)]:
            del self._inflight[key]

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: waiters that went away must not cause a warning
