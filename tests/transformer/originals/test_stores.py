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
