"""The layered lookup the CDN hot path uses: memory -> disk -> [shared store] -> one producer
per key.

The shared store (``cache.shared.SharedLayer``, optional) is asked inside the key's single
flight, so concurrent misses of one node cost one store lookup; a hit there fills memory and
disk, and what the producer makes is handed back to it after the answer (write-behind).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from cachetools import TTLCache

from cache.coalesce import SingleFlight
from cache.disk import DiskCache, split_key
from cache.entry import Entry
from cache.memory import MemoryCache
from cache.shared import SharedLayer

Layer = Literal["memory", "disk", "store", "miss", "coalesced"]


class RenditionCache:
    def __init__(self, memory: MemoryCache, disk: DiskCache,
                 shared: SharedLayer | None = None) -> None:
        self.memory = memory
        self.disk = disk
        self.shared = shared
        self._flights: SingleFlight[tuple[Entry, Layer]] = SingleFlight()
        self._writes: set[asyncio.Task[bool]] = set()
        self._last_write: dict[str, asyncio.Task[bool]] = {}  # per key: writes land in order
        # A production that started before a purge of its image must not refill the caches.
        self._purge_seq = 0
        self._purged: TTLCache[str, int] = TTLCache(maxsize=65536, ttl=3600)

    async def start(self) -> None:
        await self.disk.start()

    async def close(self) -> None:
        """Let pending disk writes finish so a graceful stop leaves them on disk."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def peek(self, key: str) -> Entry | None:
        """Memory layer only: the synchronous fast path for hits."""
        return self.memory.get(key)

    @property
    def enabled(self) -> bool:
        """Whether any layer keeps renditions (with none, nothing can be refined later)."""
        return self.memory.enabled or self.disk.enabled

    async def get_or_produce(
        self, key: str, producer: Callable[[], Awaitable[Entry]]
    ) -> tuple[Entry, Layer]:
        entry = self.memory.get(key)
        if entry is not None:
            return entry, "memory"
        entry = await self.disk.get(key)
        if entry is not None:
            self.memory.put(key, entry)
            return entry, "disk"
        # A production may have finished while the disk was read; from here to joining or
        # starting a flight nothing awaits, so this check and the flight are atomic.
        entry = self.memory.get(key)
        if entry is not None:
            return entry, "memory"

        group, _variant = split_key(key)
        started = self._purge_seq
        shared = self.shared

        def current() -> bool:
            return self._purged.get(group, -1) <= started

        async def produce() -> tuple[Entry, Layer]:
            if shared is not None:
                found = await shared.lookup(key)
                if found is not None:
                    if current():
                        self._keep(key, found)
                    return found, "store"
            try:
                produced = await producer()
            except BaseException:
                if shared is not None:
                    shared.abandon(key)
                raise
            if current():
                self._keep(key, produced)
                if shared is not None:
                    shared.save(key, produced)
            elif shared is not None:
                shared.abandon(key)  # purged meanwhile: store nothing of a deleted image
            return produced, "miss"

        (entry, layer), coalesced = await self._flights.run(key, produce)
        return entry, "coalesced" if coalesced else layer

    def epoch(self) -> int:
        """A mark to pass to ``replace``: purges after it win over a late replacement."""
        return self._purge_seq

    def replace(self, key: str, entry: Entry, *, since: int, share: bool = True) -> bool:
        """Swap in a new entry for ``key`` (a refined rendition) in memory now and on disk in
        the background, unless its image was purged after ``since``; returns whether it was.
        ``share``: also hand it to the shared store (not when it came from there)."""
        group, _variant = split_key(key)
        if self._purged.get(group, -1) > since:
            return False
        self._keep(key, entry)
        if share and self.shared is not None:
            self.shared.save(key, entry)
        return True

    def _keep(self, key: str, entry: Entry) -> None:
        self.memory.put(key, entry)
        if not self.disk.enabled:
            return
        # The response need not wait for the disk; close() waits for stragglers. A key's writes
        # are chained, so a refined entry is never overwritten by its provisional one's write.
        task = asyncio.create_task(self._write_after(self._last_write.get(key), key, entry))
        self._writes.add(task)
        self._last_write[key] = task
        task.add_done_callback(lambda done: self._written(key, done))

    async def _write_after(self, previous: asyncio.Task[bool] | None, key: str,
                           entry: Entry) -> bool:
        if previous is not None:
            await asyncio.wait([previous])
        return await self.disk.put(key, entry)

    def _written(self, key: str, task: asyncio.Task[bool]) -> None:
        self._writes.discard(task)
        if self._last_write.get(key) is task:
            del self._last_write[key]

    async def purge(self, group: str) -> None:
        """Drop every cached variant of one image (all sizes and formats)."""
        split_key(f"{group}/x")  # validates the group the same way keys are validated
        self._purge_seq += 1
        self._purged[group] = self._purge_seq
        self._flights.forget_prefix(f"{group}/")
        self.memory.discard_prefix(f"{group}/")
        await self.disk.discard_group(group)
