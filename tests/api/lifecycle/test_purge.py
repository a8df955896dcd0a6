"""The purge hook the delete paths call: this process's caches, then the shared store."""

from __future__ import annotations

from typing import Any, cast

import pytest

from api.lifecycle.purge import purge_renditions
from transformer.originals import StoreUnavailable
from transformer.renditions import S3RenditionStore


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.purged: list[tuple[str, str]] = []

    async def purge_image(self, team_hash: str, uid: str) -> int:
        if self.fail:
            raise StoreUnavailable("rendition store unreachable")
        self.purged.append((team_hash, uid))
        return 1


async def test_local_caches_then_the_store() -> None:
    calls: list[Any] = []

    async def local(team_hash: str, uid: str) -> None:
        calls.append(("local", team_hash, uid))

    store = FakeStore()
    purge = purge_renditions(local, cast(S3RenditionStore, store))
    assert purge is not None
    await purge("t", "u")
    assert calls == [("local", "t", "u")] and store.purged == [("t", "u")]
    assert purge_renditions(local, None) is local
    assert purge_renditions(None, None) is None


async def test_a_store_outage_reaches_the_delete_path_to_be_retried() -> None:
    purge = purge_renditions(None, cast(S3RenditionStore, FakeStore(fail=True)))
    assert purge is not None
    with pytest.raises(StoreUnavailable):  # remove_originals leaves the row for the sweeper
        await purge("t", "u")
