"""The S3 rendition store against moto in server mode (real HTTP), two stores = two nodes.

Each test gets a fresh bucket. What the bucket holds is read straight from S3, and waits are
for events (an object appearing, a lookup returning), never assertions on durations.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiobotocore.session import get_session
from prometheus_client import REGISTRY

from cache import Entry
from tests.conftest import MotoServer, free_port
from transformer.originals import StoreUnavailable
from transformer.renditions import RenditionStoreConfig, S3RenditionStore

KEY = "team1/img1/m.webp.e5"


def config(url: str, endpoint: str, **changes: Any) -> RenditionStoreConfig:
    base = RenditionStoreConfig(url=url, endpoint_url=endpoint, timeout=5, conditional=True,
                                lease_seconds=10, breaker_failures=3, breaker_seconds=30,
                                write_queue=64)
    return replace(base, **changes)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Bucket:
    def __init__(self, moto: MotoServer, name: str) -> None:
        self.moto = moto
        self.name = name

    async def objects(self, prefix: str = "") -> dict[str, dict[str, str]]:
        """Every object under ``prefix``: key -> its metadata."""
        async with get_session().create_client("s3", endpoint_url=self.moto.endpoint_url) as s3:
            listing = await s3.list_objects_v2(Bucket=self.name, Prefix=prefix)
            found = {}
            for item in listing.get("Contents", []):
                head = await s3.head_object(Bucket=self.name, Key=item["Key"])
                found[item["Key"]] = dict(head["Metadata"])
            return found


@pytest.fixture
async def cluster(moto_server: MotoServer) -> AsyncIterator[
        tuple[Bucket, Callable[..., S3RenditionStore]]]:
    """The bucket, and a factory of stores on it (each one a node); all closed after."""
    bucket = Bucket(moto_server, f"renditions-{uuid.uuid4().hex[:12]}")
    made: list[S3RenditionStore] = []

    def node(**changes: Any) -> S3RenditionStore:
        store = S3RenditionStore(config(f"s3://{bucket.name}/r", moto_server.endpoint_url,
                                        **changes))
        made.append(store)
        return store

    await node().prepare(create_missing=True)
    yield bucket, node
    for store in made:
        await store.close()


async def warm(*stores: S3RenditionStore) -> None:
    """Have each store make its client (loading botocore's models takes a while): a test
    that times one node against another must not count that."""
    for store in stores:
        await store.fetch("warm/up/s.jpeg.e5")


async def settle(store: S3RenditionStore) -> None:
    """Wait for the store's write-behind (the test's stand-in for "a moment later")."""
    await store._writer.close(30)


async def test_one_node_stores_and_another_reads_it(cluster) -> None:  # type: ignore[no-untyped-def]
    bucket, node = cluster
    a, b = node(), node()
    assert await a.lookup(KEY) is None  # a miss: a takes the lease and transforms
    assert (await bucket.objects())["r/" + KEY]["state"] == "pending"
    rendition = Entry.of(b"RIFF....WEBPVP8 final bytes")
    a.save(KEY, rendition)
    await settle(a)
    assert await b.lookup(KEY) == rendition
    stored = await bucket.objects()
    assert stored == {"r/" + KEY: {"digest": rendition.digest, "state": "final"}}


async def test_a_waiting_node_gets_the_lease_holders_rendition(cluster) -> None:  # type: ignore[no-untyped-def]
    _bucket, node = cluster
    a, b = node(), node()
    await warm(a, b)
    served = sample("imgpro_rendition_store_lease_waits_total", result="served")
    assert await a.lookup(KEY) is None
    waiting = asyncio.create_task(b.lookup(KEY))
    await asyncio.sleep(0.2)
    assert not waiting.done(), "b waits for a's lease instead of transforming"
    rendition = Entry.of(b"made once", final=False)
    a.save(KEY, rendition)
    assert await waiting == rendition and not rendition.final
    assert sample("imgpro_rendition_store_lease_waits_total", result="served") == served + 1


async def test_an_abandoned_lease_lets_waiters_go_at_once(cluster) -> None:  # type: ignore[no-untyped-def]
    bucket, node = cluster
    a, b = node(), node()
    await warm(a, b)
    assert await a.lookup(KEY) is None
    waiting = asyncio.create_task(b.lookup(KEY))
    while KEY not in b._expected:  # until b has seen a's lease
        await asyncio.sleep(0.01)
    a.abandon(KEY)  # a's transform failed
    assert await waiting is None  # b transforms itself (and gets the same error, if any)
    assert await bucket.objects() == {}


async def test_the_wait_is_bounded_by_the_lease(cluster) -> None:  # type: ignore[no-untyped-def]
    _bucket, node = cluster
    a, b = node(lease_seconds=1.5), node(lease_seconds=1.5)
    await warm(a, b)
    timeouts = sample("imgpro_rendition_store_lease_waits_total", result="timeout")
    assert await a.lookup(KEY) is None  # a takes the lease and then never writes (it died)
    assert await b.lookup(KEY) is None
    assert sample("imgpro_rendition_store_lease_waits_total", result="timeout") == timeouts + 1
    assert await node(lease_seconds=1.5).lookup(KEY) is None, "an expired lease is taken over"
    assert sample("imgpro_rendition_store_leases_total", result="acquired") >= 2


async def test_final_replaces_provisional_and_nothing_older_overwrites_it(cluster) -> None:  # type: ignore[no-untyped-def]
    bucket, node = cluster
    a, b = node(), node()
    await a.lookup(KEY)
    a.save(KEY, Entry.of(b"fast", final=False))
    a.save(KEY, Entry.of(b"final"))  # the refine lane's result, chained after the first
    await settle(a)
    assert (await bucket.objects())["r/" + KEY]["state"] == "final"
    conflicts = sample("imgpro_rendition_store_writes_total", result="conflict")
    b._wrote(KEY, "")  # b saw nothing there a while ago and wrote late: refused
    b.save(KEY, Entry.of(b"late provisional", final=False))
    await settle(b)
    assert await node().fetch(KEY) == Entry.of(b"final")
    assert sample("imgpro_rendition_store_writes_total", result="conflict") == conflicts + 1


async def test_purge_removes_one_image_and_a_late_write_does_not_bring_it_back(cluster) -> None:  # type: ignore[no-untyped-def]
    bucket, node = cluster
    a = node()
    for key in ("team1/img1/s.jpeg.e5", "team1/img1/l.avif.e5", "team1/img10/s.jpeg.e5"):
        await a.lookup(key)
        a.save(key, Entry.of(key.encode()))
    await settle(a)
    assert await a.lookup(KEY) is None  # a transform of img1 is under way meanwhile
    assert await node().purge_image("team1", "img1") == 3  # two renditions and the lease
    a.save(KEY, Entry.of(b"of a deleted image"))
    await settle(a)
    assert list(await bucket.objects()) == ["r/team1/img10/s.jpeg.e5"]


async def test_a_dead_endpoint_opens_the_breaker_and_costs_nothing_after() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = S3RenditionStore(config("s3://nowhere/r", dead, breaker_failures=2,
                                    breaker_seconds=60, timeout=2))
    try:
        errors = sample("imgpro_rendition_store_errors_total", op="get")
        skipped = sample("imgpro_rendition_store_lookups_total", result="skipped")
        for _ in range(2):
            assert await store.lookup(KEY) is None
        assert store.breaker.state == "open"
        assert sample("imgpro_rendition_store_breaker_state") == 2
        for _ in range(5):
            assert await store.lookup(KEY) is None
        assert sample("imgpro_rendition_store_errors_total", op="get") == errors + 2
        assert sample("imgpro_rendition_store_lookups_total", result="skipped") == skipped + 5
        store.save(KEY, Entry.of(b"x"))
        with pytest.raises(StoreUnavailable):
            await store.purge_image("team1", "img1")
    finally:
        await store.close()


async def test_without_conditional_writes_there_is_no_lease(cluster) -> None:  # type: ignore[no-untyped-def]
    bucket, node = cluster
    a, b = node(conditional=False), node(conditional=False)
    assert await a.lookup(KEY) is None and await b.lookup(KEY) is None  # both transform
    assert await bucket.objects() == {}
    a.save(KEY, Entry.of(b"one"))
    b.save(KEY, Entry.of(b"two"))
    await settle(a)
    await settle(b)
    assert await node().fetch(KEY) in (Entry.of(b"one"), Entry.of(b"two"))
