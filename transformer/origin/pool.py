"""A bounded lane for CPU work: a thread pool sized to the cores plus a waiting limit.

libvips releases the GIL, so one Python thread per core keeps every core busy. Work beyond
``threads + queue_limit`` is refused with ``Overloaded`` (the server answers 503 +
Retry-After) instead of piling up.

Memory: a job reads its original only once it holds one of ``2 x threads`` slots, so waiting
jobs hold nothing and at most two originals per thread are in memory. Two, not one: while a
thread transforms one image, the next job's original is already being read (from disk or S3),
so a core never idles on I/O between transforms (the executor's ``threads`` workers are what
bound the CPU work; a slot only bounds the originals).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Overloaded(RuntimeError):
    """The transform lane is full; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("transform queue is full")
        self.retry_after = retry_after


class TransformPool:
    def __init__(self, threads: int, queue_limit: int) -> None:
        self.threads = threads
        self.capacity = threads + queue_limit
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="transform")
        self._slots = asyncio.Semaphore(2 * threads)
        self._admitted = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_for_idle_thread(self) -> None:
        """Returns once no miss would wait for a thread: when the refine lane may start a job."""
        await self._idle.wait()

    async def run(self, job: Callable[[], Awaitable[T]]) -> T:
        """Admit ``job`` or raise Overloaded; the job awaits ``in_thread`` for its CPU part."""
        if self._admitted >= self.capacity:
            raise Overloaded(retry_after=1)
        self._admitted += 1
        if self._admitted >= self.threads:
            self._idle.clear()
        try:
            async with self._slots:
                return await job()
        finally:
            self._admitted -= 1
            if self._admitted < self.threads:
                self._idle.set()

    async def in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
