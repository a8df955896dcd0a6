"""Fixtures and checks of the fault-injection suite: real servers, real PostgreSQL, real moto,
and the faults a test controls (a TCP proxy it can cut, signals, a full filesystem).

After each fault the tests look at what is stored, with the server's own database and store
read directly (not through the API under test):

- ``stored_state`` collects rows, originals and counters;
- ``assert_consistent`` holds the invariants: every live row has its original, every original
  is owned by a row (live, or deleted with its removal still pending), each team's stored
  bytes are the sum of its live rows, each team's monthly upload count is its number of rows.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image

from api.db import Database
from tests.api.conftest import postgres_databases  # noqa: F401 - the fixture, shared
from tests.faults.tcp_proxy import TcpProxy
from transformer.originals import OriginalsStore, open_store

PG_HOST, PG_PORT = "127.0.0.1", 5432


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    """A proxy between a server and PostgreSQL that the test can cut and restore."""
    proxy = TcpProxy(PG_HOST, PG_PORT).start()
    yield proxy
    proxy.close()


@pytest.fixture
def fresh_pg(postgres_databases: Callable[[], tuple[str, str]]) -> Iterator[str]:  # noqa: F811
    """The name of a fresh PostgreSQL database, dropped after the test."""
    from tests.api.conftest import _admin

    name, _url = postgres_databases()
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def direct_pg_url(name: str) -> str:
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"


@dataclass
class Stored:
    rows: list[dict[str, Any]]
    originals: set[tuple[str, str]]
    teams: dict[str, dict[str, int]]
    """team hash -> {"storage": stored bytes counter, "uploads": monthly uploads counter}."""

    @property
    def live(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["deleted_at"] is None]

    def ids(self) -> set[str]:
        return {r["id"] for r in self.rows}


def stored_state(database_url: str, store_url: str, **store_options: Any) -> Stored:
    async def read() -> Stored:
        db = Database(database_url)
        store: OriginalsStore = open_store(store_url, **store_options)
        try:
            async with db.read() as conn:
                rows = [dict(r) for r in (await conn.execute(sa.text(
                    "SELECT m.id, t.hash AS team, m.filesize, m.deleted_at, m.original_removed "
                    "FROM media m JOIN teams t ON t.id = m.team_id"))).mappings()]
                teams = {r["hash"]: {"storage": int(r["storage_bytes"]),
                                     "uploads": int(r["uploads"] or 0)}
                         for r in (await conn.execute(sa.text(
                             "SELECT t.hash, t.storage_bytes, "
                             "(SELECT sum(u.uploads) FROM usage_months u WHERE u.team_id = t.id)"
                             " AS uploads FROM teams t"))).mappings()}
            originals = set()
            async for team in store.list_teams():
                async for item in store.list_originals(team):
                    originals.add((team, item.uid))
            return Stored(rows, originals, teams)
        finally:
            await store.close()
            await db.close()

    return asyncio.run(read())


def assert_consistent(stored: Stored, *, anonymous_uploads_counted: bool = False) -> None:
    """The invariants of the module doc; anonymous uploads have no monthly counter."""
    owned = {(r["team"], r["id"]) for r in stored.rows
             if r["deleted_at"] is None or not r["original_removed"]}
    live = {(r["team"], r["id"]) for r in stored.live}
    assert live <= stored.originals, f"live rows without original: {live - stored.originals}"
    assert stored.originals <= owned, f"orphaned originals: {stored.originals - owned}"
    for team, counters in stored.teams.items():
        rows = [r for r in stored.rows if r["team"] == team]
        assert counters["storage"] == sum(r["filesize"] for r in rows
                                          if r["deleted_at"] is None), team
        if team != "anon" or anonymous_uploads_counted:
            assert counters["uploads"] == len(rows), team


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``check`` (no timing is asserted: the bound only stops a hung test)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.1)


METRICS_TOKEN = "metrics-token-of-the-fault-tests"
METRICS = {"IMGPRO_METRICS_TOKEN": METRICS_TOKEN}
"""/metrics is off unless configured: servers whose counters a test reads get this token."""
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def metric(url: str, name: str) -> float:
    """A sample's value from /metrics (summed over its label sets and workers)."""
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10, headers=METRICS_AUTH).text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def assert_wait_503(response: httpx.Response) -> None:
    """The reference's shape for "the service is unavailable, retry after this long"."""
    assert response.status_code == 503, response.text
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1
    if response.headers["content-type"].startswith("application/json"):
        body = response.json()
        assert body["error"] in ("service_unavailable", "storage_unavailable"), body
        assert body["action"] == {"type": "wait", "seconds": seconds}


def team_of(media: dict[str, Any]) -> str:
    return str(media["src"].rsplit("/", 2)[1])


def originals_dir(data_dir: Path) -> str:
    return f"file://{(data_dir / 'originals').resolve()}"


def noise_png(size: int, seed: int) -> bytes:
    """An incompressible PNG of about ``size`` bytes (large enough to be spooled)."""
    side = int((size / 3) ** 0.5)
    pixels = random.Random(seed).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(out, format="PNG", compress_level=0)
    return out.getvalue()
