"""Background writes that never make a client wait, and never pile up.

A node answers first and stores afterwards. The queue is bounded (beyond ``capacity`` pending
jobs a new one is dropped, and counted by the caller): under a store that is slow, memory stays
bounded and the cost is only that another node may transform the rendition again. At most
``concurrency`` jobs run at once. Jobs of one key run in the order they were submitted, so a
final rendition is never overwritten by its own provisional one's late write, and a lease is
released only after the write that was to replace it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class WriteBehind:
    def __init__(self, capacity: int, concurrency: int) -> None:
        self.capacity = capacity
        self._gate = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def submit(self, key: str, job: Job) -> bool:
        """Run ``job`` in the background after the key's earlier jobs; False if dropped."""
        if len(self._tasks) >= self.capacity:
            return False
        task = asyncio.create_task(self._run(self._last.get(key), job))
        self._tasks.add(task)
        self._last[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return True

    async def _run(self, previous: asyncio.Task[None] | None, job: Job) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        async with self._gate:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # a job handles its expected failures; this is a bug's last net
                log.exception("rendition store write failed")

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._last.get(key) is task:
            del self._last[key]

    async def close(self, grace: float) -> None:
        """Give pending jobs ``grace`` seconds (a graceful stop), then cancel the rest."""
        if not self._tasks:
            return
        pending = set(self._tasks)
        _done, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("rendition store: %d writes dropped at shutdown", len(late))
