"""One suite, both originals stores: the local directory and S3 (moto over real HTTP)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from transformer.originals import (
    LocalOriginalsStore,
    OriginalNotFound,
    OriginalsStore,
    StoreUnavailable,
    open_store,
)
from transformer.originals.s3 import PART_SIZE, S3OriginalsStore


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OriginalsStore]:
    if request.param == "local":
        yield LocalOriginalsStore(tmp_path / "originals")
        return
    moto = request.getfixturevalue("moto_server")
    s3 = S3OriginalsStore(f"bucket-{uuid.uuid4().hex[:12]}", "originals",
                          endpoint_url=moto.endpoint_url)
    await s3.ensure_bucket()
    yield s3
    await s3.close()


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_put_get_head_delete(store: OriginalsStore) -> None:
    assert await store.head("team", "abc") is None
    assert await store.put("team", "abc", b"x" * 1000) == 1000
    assert await store.get("team", "abc") == b"x" * 1000
    stored = await store.head("team", "abc")
    assert stored is not None and stored.size == 1000 and stored.etag
    assert await collect(store.stream("team", "abc")) == b"x" * 1000
    assert await store.delete("team", "abc") is True
    assert await store.delete("team", "abc") is False
    assert await store.head("team", "abc") is None
    with pytest.raises(OriginalNotFound):
        await store.get("team", "abc")
    with pytest.raises(OriginalNotFound):
        await collect(store.stream("team", "abc"))


async def test_overwrite_changes_etag(store: OriginalsStore) -> None:
    await store.put("team", "v", b"first")
    first = await store.head("team", "v")
    await asyncio.sleep(0.01)
    await store.put("team", "v", b"second!")
    second = await store.head("team", "v")
    assert first is not None and second is not None
    assert second.size == 7 and second.etag != first.etag


async def test_large_original_from_chunks(store: OriginalsStore) -> None:
    blob = bytes(range(256)) * ((PART_SIZE * 2 + 12345) // 256)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(blob), 1_000_003):
            yield blob[start : start + 1_000_003]

    assert await store.put("team", "big", chunks()) == len(blob)
    assert await store.get("team", "big") == blob
    streamed = await collect(store.stream("team", "big"))
    assert streamed == blob


async def test_hostile_keys_are_never_paths(store: OriginalsStore) -> None:
    for team, uid in [("..", "x"), ("team", "../../etc/passwd"), ("a/b", "c"), ("", "x")]:
        with pytest.raises(OriginalNotFound):
            await store.get(team, uid)
        assert await store.head(team, uid) is None


async def test_teams_do_not_share_keys(store: OriginalsStore) -> None:
    await store.put("one", "same", b"1")
    await store.put("two", "same", b"2")
    assert await store.get("one", "same") == b"1"
    assert await store.get("two", "same") == b"2"


async def test_unreachable_s3_is_store_unavailable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s3 = S3OriginalsStore("nowhere", endpoint_url=f"http://127.0.0.1:{port}", connect_timeout=1,
                          read_timeout=1, max_attempts=1)
    try:
        with pytest.raises(StoreUnavailable):
            await s3.get("team", "abc")
        with pytest.raises(StoreUnavailable):
            await s3.head("team", "abc")
    finally:
        await s3.close()


def test_open_store_picks_by_url(tmp_path: Path) -> None:
    assert isinstance(open_store(f"file://{tmp_path}"), LocalOriginalsStore)
    s3 = open_store("s3://bucket/some/prefix", s3_endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3OriginalsStore)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")


async def test_listings_are_sorted_by_bytes(store: OriginalsStore) -> None:
    import time

    assert [t async for t in store.list_teams()] == []
    for team, uid in (("tb", "Zz"), ("ta", "b1"), ("ta", "B2"), ("ta", "a-3"), ("t-a", "x")):
        await store.put(team, uid, b"data")
    assert [t async for t in store.list_teams()] == ["t-a", "ta", "tb"]
    listed = [item async for item in store.list_originals("ta")]
    assert [item.uid for item in listed] == ["B2", "a-3", "b1"]
    assert all(abs(item.modified - time.time()) < 300 for item in listed)
    assert [item async for item in store.list_originals("absent")] == []
    assert [item async for item in store.list_originals("../etc")] == []


async def test_s3_stream_of_one_part_is_one_put(moto_server) -> None:  # type: ignore[no-untyped-def]
    s3 = S3OriginalsStore(f"bucket-{uuid.uuid4().hex[:12]}", endpoint_url=moto_server.endpoint_url)
    await s3.ensure_bucket()
    try:
        async def chunks(total: int) -> AsyncIterator[bytes]:
            for start in range(0, total, 1 << 20):
                yield b"z" * min(1 << 20, total - start)

        for total in (3 << 20, PART_SIZE, PART_SIZE + 5):
            assert await s3.put("team", f"u{total}", chunks(total)) == total
            assert await s3.get("team", f"u{total}") == b"z" * total
    finally:
        await s3.close()


def test_local_listing_removes_temp_files_of_dead_writers(tmp_path: Path) -> None:
    import os
    import time

    store = LocalOriginalsStore(tmp_path)
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "keep").write_bytes(b"x")
    stale, fresh = folder / ".keep.dead.tmp", folder / ".keep.live.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))

    async def listing() -> list[str]:
        return [item.uid async for item in store.list_originals("team")]

    assert asyncio.run(listing()) == ["keep"]
    assert not stale.exists() and fresh.exists()
