from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cache import DiskCache, Entry, MemoryCache, RenditionCache, SingleFlight


def make(tmp_path: Path, memory: int = 1_000_000, disk: int = 10_000_000) -> RenditionCache:
    return RenditionCache(MemoryCache(memory), DiskCache(tmp_path, disk))


async def test_layers_in_order(tmp_path: Path) -> None:
    cache = make(tmp_path)
    await cache.start()
    calls = 0

    async def producer() -> Entry:
        nonlocal calls
        calls += 1
        return Entry.of(b"rendition")

    entry, layer = await cache.get_or_produce("t/u/m.webp", producer)
    assert (entry.data, layer, calls) == (b"rendition", "miss", 1)
    await cache.close()
    assert (await cache.get_or_produce("t/u/m.webp", producer))[1] == "memory"

    restarted = make(tmp_path)
    await restarted.start()
    entry2, layer2 = await restarted.get_or_produce("t/u/m.webp", producer)
    assert (layer2, entry2.etag, calls) == ("disk", entry.etag, 1)
    assert (await restarted.get_or_produce("t/u/m.webp", producer))[1] == "memory"


async def test_concurrent_misses_run_the_producer_once(tmp_path: Path) -> None:
    cache = make(tmp_path)
    await cache.start()
    calls = 0
    release = asyncio.Event()

    async def producer() -> Entry:
        nonlocal calls
        calls += 1
        await release.wait()
        return Entry.of(b"once")

    waiters = [asyncio.create_task(cache.get_or_produce("t/u/s.jpeg", producer)) for _ in range(20)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1
    assert {entry.data for entry, _ in results} == {b"once"}
    assert sorted(layer for _, layer in results).count("miss") == 1
    await cache.close()


async def test_a_cancelled_waiter_does_not_cancel_the_work() -> None:
    flights: SingleFlight[bytes] = SingleFlight()
    release = asyncio.Event()

    async def producer() -> bytes:
        await release.wait()
        return b"done"

    first = asyncio.create_task(flights.run("k", producer))
    second = asyncio.create_task(flights.run("k", producer))
    await asyncio.sleep(0.01)
    first.cancel()
    release.set()
    assert await second == (b"done", True)
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_producer_errors_reach_every_waiter_and_are_not_cached(tmp_path: Path) -> None:
    cache = make(tmp_path)
    await cache.start()
    calls = 0

    async def failing() -> Entry:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ValueError("bad original")

    results = await asyncio.gather(
        *(cache.get_or_produce("t/u/m.png", failing) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
    assert calls == 1
    with pytest.raises(ValueError):
        await cache.get_or_produce("t/u/m.png", failing)
    assert calls == 2


async def test_purge_drops_all_variants_and_blocks_refill_by_inflight_work(tmp_path: Path) -> None:
    cache = make(tmp_path)
    await cache.start()

    async def quick() -> Entry:
        return Entry.of(b"v")

    for variant in ("s.jpeg", "m.webp"):
        await cache.get_or_produce(f"t/u/{variant}", quick)
    await cache.get_or_produce("t/other/s.jpeg", quick)
    await cache.close()

    release = asyncio.Event()

    async def slow() -> Entry:
        await release.wait()
        return Entry.of(b"stale")

    inflight = asyncio.create_task(cache.get_or_produce("t/u/l.avif", slow))
    await asyncio.sleep(0.01)
    await cache.purge("t/u")
    release.set()
    await inflight
    await cache.close()

    produced_again = 0

    async def counting() -> Entry:
        nonlocal produced_again
        produced_again += 1
        return Entry.of(b"fresh")

    for variant in ("s.jpeg", "m.webp", "l.avif"):
        entry, layer = await cache.get_or_produce(f"t/u/{variant}", counting)
        assert layer == "miss" and entry.data == b"fresh"
    assert produced_again == 3
    assert (await cache.get_or_produce("t/other/s.jpeg", counting))[1] == "memory"
    await cache.close()


async def test_caches_off_means_every_request_produces(tmp_path: Path) -> None:
    cache = make(tmp_path, memory=0, disk=0)
    await cache.start()
    calls = 0

    async def producer() -> Entry:
        nonlocal calls
        calls += 1
        return Entry.of(b"x")

    for _ in range(3):
        assert (await cache.get_or_produce("t/u/s.webp", producer))[1] == "miss"
    assert calls == 3


async def test_replace_swaps_in_memory_and_on_disk_unless_purged_since(tmp_path: Path) -> None:
    cache = make(tmp_path)
    await cache.start()

    async def provisional() -> Entry:
        return Entry.of(b"fast", final=False)

    first, _ = await cache.get_or_produce("t/u/m.webp", provisional)
    assert not first.final
    since = cache.epoch()
    assert cache.replace("t/u/m.webp", Entry.of(b"final"), since=since)
    assert cache.peek("t/u/m.webp") == Entry.of(b"final")
    await cache.close()  # the disk write is done
    assert await cache.disk.get("t/u/m.webp") == Entry.of(b"final")

    since = cache.epoch()
    await cache.purge("t/u")  # deleted while a refine was running: its result is dropped
    assert not cache.replace("t/u/m.webp", Entry.of(b"late"), since=since)
    assert cache.peek("t/u/m.webp") is None
    await cache.close()
    assert await cache.disk.get("t/u/m.webp") is None


class FakeShared:
    """A SharedLayer in a dict: what the layered lookup asks of the cluster's store."""

    def __init__(self) -> None:
        self.objects: dict[str, Entry] = {}
        self.lookups: list[str] = []
        self.saved: list[tuple[str, Entry]] = []
        self.abandoned: list[str] = []

    async def lookup(self, key: str) -> Entry | None:
        self.lookups.append(key)
        await asyncio.sleep(0)
        return self.objects.get(key)

    async def fetch(self, key: str) -> Entry | None:
        return self.objects.get(key)

    def save(self, key: str, entry: Entry) -> None:
        self.saved.append((key, entry))
        self.objects[key] = entry

    def abandon(self, key: str) -> None:
        self.abandoned.append(key)


async def test_the_shared_store_is_the_third_layer(tmp_path: Path) -> None:
    shared = FakeShared()
    cache = RenditionCache(MemoryCache(1_000_000), DiskCache(tmp_path, 10_000_000), shared)
    await cache.start()
    shared.objects["t/u/m.webp"] = Entry.of(b"from another node")
    calls = 0

    async def producer() -> Entry:
        nonlocal calls
        calls += 1
        return Entry.of(b"made here")

    results = await asyncio.gather(*(cache.get_or_produce("t/u/m.webp", producer)
                                      for _ in range(5)))
    assert calls == 0 and shared.lookups == ["t/u/m.webp"], "one store lookup per flight"
    layers = sorted(layer for _, layer in results)
    assert layers.count("store") == 1 and set(layers) <= {"store", "coalesced", "memory"}
    assert {entry for entry, _ in results} == {Entry.of(b"from another node")}
    assert shared.saved == [], "what came from the store is not written back"
    await cache.close()
    assert await cache.disk.get("t/u/m.webp") == Entry.of(b"from another node")  # disk filled
    assert (await cache.get_or_produce("t/u/m.webp", producer))[1] == "memory"

    entry, layer = await cache.get_or_produce("t/u/s.jpeg", producer)
    assert (layer, calls) == ("miss", 1)
    assert shared.saved == [("t/u/s.jpeg", entry)], "a production is handed to the store"

    since = cache.epoch()
    cache.replace("t/u/s.jpeg", Entry.of(b"refined"), since=since)
    cache.replace("t/u/s.jpeg", Entry.of(b"picked up"), since=since, share=False)
    assert [e.data for _, e in shared.saved] == [b"made here", b"refined"]
    await cache.close()


async def test_a_failed_or_purged_production_abandons_its_lease(tmp_path: Path) -> None:
    shared = FakeShared()
    cache = RenditionCache(MemoryCache(1_000_000), DiskCache(tmp_path, 10_000_000), shared)
    await cache.start()

    async def failing() -> Entry:
        raise ValueError("bad original")

    with pytest.raises(ValueError):
        await cache.get_or_produce("t/u/m.png", failing)
    assert shared.abandoned == ["t/u/m.png"]

    release = asyncio.Event()

    async def slow() -> Entry:
        await release.wait()
        return Entry.of(b"of a deleted image")

    inflight = asyncio.create_task(cache.get_or_produce("t/u/l.avif", slow))
    await asyncio.sleep(0.01)
    await cache.purge("t/u")
    release.set()
    await inflight
    assert shared.saved == [] and shared.abandoned == ["t/u/m.png", "t/u/l.avif"]
    await cache.close()
