"""The refine lane: provisional renditions re-encoded at the final settings when there is CPU
to spare, then swapped in everywhere the provisional one was cached.

Why: a miss is answered with a fast encode (a client is waiting) marked provisional, short
max-age and no ``immutable``; the edge then serves the final, smaller bytes thousands of times
(README, "Provisional and final renditions", has the figures). The lane must never slow a miss:

- it starts a job only while the transform pool has an idle thread (``wait_for_idle``);
- the encode runs in a separate process at the lowest CPU priority the OS offers
  (``SCHED_IDLE``, else ``nice 19``), so a miss that arrives mid-job takes the cores back:
  libvips' and the AV1 encoder's own threads inherit the process's priority, which a
  lowered thread in this process could not promise;
- its queue is bounded: the oldest key is dropped first (counted), since a provisional entry
  that missed its turn is offered again on its next hit, and a restarted node offers what its
  disk still holds provisional.

The process is started on the first job, so a node that never refines (caches off, refine off,
formats that are final at once) never pays its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from transformer import Format, Size
from transformer.origin import metrics
from transformer.origin.lane_child import final_encode, lower_priority

log = logging.getLogger(__name__)

class LaneProcess:
    """One low-priority child process that runs ``final_encode``; replaced if it dies."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None

    async def encode(self, original: bytes, size: Size | None, fmt: Format, max_pixels: int,
                     deadline_seconds: float) -> bytes:
        loop = asyncio.get_running_loop()
        executor = self._ensure()
        try:
            # The child's own deadline ends a slow encode; this bound only catches a child that
            # stopped answering altogether (then it is killed and replaced).
            return await asyncio.wait_for(
                loop.run_in_executor(executor, final_encode, original, size, fmt, max_pixels,
                                     deadline_seconds),
                deadline_seconds + 30)
        except (BrokenProcessPool, TimeoutError):
            self.close()
            raise

    def _ensure(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn: a fork of a process with an event loop and libvips threads is unsafe.
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=lower_priority)
        return self._executor

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        for process in list(getattr(executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.kill()  # a long final encode need not finish during a shutdown
        # Wait for the executor's management thread (quick: its child is dead). Left running,
        # it races concurrent.futures' exit hook, which then writes to the wakeup pipe the
        # thread is closing: "Exception ignored ... Bad file descriptor" in the log at exit.
        executor.shutdown(wait=True, cancel_futures=True)


class RefineLane:
    """A bounded queue of rendition keys and the task that refines them one at a time."""

    def __init__(self, capacity: int, wait_for_idle: Callable[[], Awaitable[None]],
                 refine: Callable[[str], Awaitable[None]]) -> None:
        self.capacity = capacity
        self._wait_for_idle = wait_for_idle
        self._refine = refine
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.current: str | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, key: str) -> None:
        """Queue ``key`` for refinement (a no-op if it is queued or being refined)."""
        if key in self._queue or key == self.current:
            return
        if len(self._queue) >= self.capacity:
            self._queue.popitem(last=False)
            metrics.REFINE_DROPPED.inc()
        self._queue[key] = None
        metrics.REFINE_QUEUE.set(len(self._queue))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="refine-lane")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            while self._queue:
                await self._wait_for_idle()
                if not self._queue:  # offered keys may have been dropped meanwhile
                    break
                key, _ = self._queue.popitem(last=False)
                metrics.REFINE_QUEUE.set(len(self._queue))
                self.current = key
                try:
                    await self._refine(key)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a lane must outlive any one image: logged, counted, next
                    log.exception("refining %s failed", key)
                    metrics.REFINE_DONE.labels("failed").inc()
                finally:
                    self.current = None
            self._wake.clear()
