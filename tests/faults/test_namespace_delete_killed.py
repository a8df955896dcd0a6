"""A server killed (SIGKILL) in the middle of a namespace delete of 30,000 media, and again
while its sweeper removes their originals: after restarts, the client's retry finishes the
job with the exact count, every original is removed, counters equal a recount, and nothing is
orphaned."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.bulk_media import add_rows, recount, run, team_of
from tests.api.conftest import fresh_email, tiny_png
from tests.conftest import RunningServer, start_server, stop_server
from tests.faults.conftest import (
    assert_consistent,
    direct_pg_url,
    originals_dir,
    stored_state,
    wait_until,
)

ROWS = 45_000
"""More than two chunks (api.db.media.NAMESPACE_CHUNK), so the kill can fall between them."""
FAST_SWEEP = {"IMGPRO_RETENTION_SWEEP_SECONDS": "0.5"}


def _call(server: RunningServer, method: str, path: str, key: str,
          **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, f"{server.url}{path}", timeout=120, headers=headers,
                         **kwargs)  # type: ignore[arg-type]


def _upload(server: RunningServer, key: str, namespace: str, seed: int) -> dict[str, str]:
    answer = _call(server, "POST", "/v1/upload", key, data={"namespace": namespace},
                   files={"file": ("a.png", tiny_png(seed=seed))})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _statement_running(url: str) -> bool:
    import asyncpg

    async def check() -> bool:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
                "query LIKE '%UPDATE media SET deleted_at%'")
            return bool(found)
        finally:
            await conn.close()

    return asyncio.run(check())


def _kill(server: RunningServer) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(30)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_namespace_delete_killed_mid_way_is_finished_by_a_retry(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    data_dir = tmp_path / "node"
    if backend == "postgresql":
        database_url = direct_pg_url(request.getfixturevalue("fresh_pg"))
    else:
        database_url = f"sqlite+aiosqlite:///{data_dir / 'imgpro.db'}"
    env = {"IMGPRO_DATABASE_URL": database_url, **FAST_SWEEP}
    server = start_server(data_dir, env)
    answer = httpx.post(f"{server.url}/v1/keys", json={"email": fresh_email("nsk")}, timeout=30)
    key = answer.json()["key"]
    for seed in range(3):  # with originals in the store, unlike the bulk rows
        _upload(server, key, "big", seed)
    kept = _upload(server, key, "keep", 9)
    team_id = team_of(database_url, kept["id"])
    add_rows(database_url, team_id, ROWS, namespace="big", tags=["t"])
    run(database_url, "UPDATE usage_months SET uploads = uploads + :n WHERE team_id = :t",
        n=ROWS, t=team_id)  # as if uploaded: the consistency check counts monthly uploads

    # 1. Killed while a chunk's statement runs: that chunk is rolled back, earlier ones kept.
    outcome: list[object] = []
    client = threading.Thread(target=lambda: outcome.append(_try_delete(server, key)))
    client.start()
    if backend == "postgresql":
        wait_until(lambda: _statement_running(database_url), "the UPDATE running", 60)
    else:
        time.sleep(0.05)
    _kill(server)
    client.join(60)
    assert outcome and not isinstance(outcome[0], httpx.Response), outcome
    # Chunks are committed with their counters: whatever the kill left, the counters match.
    live_big = int(run(database_url, "SELECT count(*) FROM media WHERE team_id = :t AND "
                       "namespace = 'big' AND deleted_at IS NULL", t=team_id)[0][0])
    counted = run(database_url, "SELECT media_count FROM namespace_totals WHERE team_id = :t "
                  "AND namespace = 'big'", t=team_id)
    assert counted == [(live_big,)]
    if backend == "postgresql":
        assert live_big > 0, "killed while a chunk's statement ran: not all committed"

    # 2. Restarted, the client's retry continues the deletion and answers the exact count of
    # what was left; killed again as soon as it answered, while the sweeper removes originals.
    server = start_server(data_dir, env)
    retried = _try_delete(server, key)
    assert isinstance(retried, httpx.Response) and retried.status_code == 200, retried
    assert retried.json() == {"deleted": live_big}
    _kill(server)

    # 3. Restarted once more: the dead process's leases pass (made to pass here instead of
    # waiting their 5 minutes) and the sweeper finishes every removal.
    run(database_url, "UPDATE media SET removal_lease = removal_lease - 400 "
        "WHERE removal_lease IS NOT NULL")
    server = start_server(data_dir, env)
    try:
        wait_until(lambda: not int(run(
            database_url, "SELECT count(*) FROM media WHERE deleted_at IS NOT NULL AND "
            "original_removed = false")[0][0]), "every removal done", 240)
        by_namespace, stored = recount(database_url, team_id)
        assert by_namespace == {"keep": (1, int(kept["filesize"]))}
        listed = _call(server, "GET", "/v1/namespaces", key).json()["namespaces"]
        assert [(n["namespace"], n["count"], n["storage_bytes"]) for n in listed] == [
            ("keep", 1, by_namespace["keep"][1])]
        assert _call(server, "GET", "/v1/usage", key).json()["storage_used_bytes"] == stored
        state = stored_state(database_url, originals_dir(data_dir))
        assert_consistent(state)
        assert {uid for _, uid in state.originals} == {kept["id"]}
    finally:
        stop_server(server)


def _try_delete(server: RunningServer, key: str) -> object:
    try:
        return _call(server, "DELETE", "/v1/media/batch", key, json={"namespace": "big"})
    except httpx.TransportError as exc:
        return exc
