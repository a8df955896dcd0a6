"""PostgreSQL away: connections cut by a TCP proxy the test controls (refused, and reset in
the middle of statements) and backends terminated, during uploads, lists and batch operations.

A client sees 503 + Retry-After in the reference's shape, never a 500; /healthz stays 200
(liveness) while /readyz names the database; once the database is back, every operation
works again; and what is stored is consistent: every 201 kept, every 200 batch delete
applied, no original without its row, counters exact.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import _admin, fresh_email, tiny_png
from tests.conftest import start_server, stop_server
from tests.faults.conftest import (
    assert_consistent,
    assert_wait_503,
    direct_pg_url,
    originals_dir,
    stored_state,
    wait_until,
)
from tests.faults.tcp_proxy import TcpProxy


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"})

    def close(self) -> None:
        self.http.close()

    def upload(self, seed: int) -> httpx.Response:
        return self.http.post("/v1/upload", files={"file": ("a.png", tiny_png(seed=seed))})


def every_operation(api: Api, media_id: str) -> dict[str, httpx.Response]:
    """One request of each kind the API has (writes on a media that exists)."""
    h = api.http
    return {
        "upload": api.upload(1),
        "import": h.post("/v1/import", json={"url": f"{api.url}/x/{media_id}.png"}),
        "list": h.get("/v1/media"),
        "get": h.get(f"/v1/media/{media_id}"),
        "patch": h.patch(f"/v1/media/{media_id}", json={"name": "renamed"}),
        "batch_update": h.patch("/v1/media/batch",
                                json={"ids": [media_id], "update": {"tags": "x"}}),
        "batch_delete": h.request("DELETE", "/v1/media/batch", json={"ids": ["nonexistent1"]}),
        "delete": h.delete("/v1/media/nonexistent1"),
        "usage": h.get("/v1/usage"),
        "namespaces": h.get("/v1/namespaces"),
        "keys": h.post("/v1/keys", json={"email": fresh_email("cut")}),
        "viewer": h.get(f"/{media_id}"),
    }


def terminate_backends(database: str) -> None:
    asyncio.run(_admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"))


def test_postgresql_cut_during_uploads_lists_and_batches(
        tmp_path: Path, pg_proxy: TcpProxy, fresh_pg: str) -> None:
    data_dir = tmp_path / "node"
    server = start_server(data_dir, {
        "IMGPRO_DATABASE_URL": f"postgresql://postgres@{pg_proxy.address}/{fresh_pg}",
        "IMGPRO_DATABASE_TIMEOUT": "2", "IMGPRO_RETENTION_SWEEP_SECONDS": "1",
        "IMGPRO_RECONCILE_SECONDS": "1", "IMGPRO_ORPHAN_GRACE_SECONDS": "5",
        "IMGPRO_IMPORT_ALLOW_PRIVATE": "1",
    })
    created_key = httpx.post(f"{server.url}/v1/keys", json={"email": fresh_email("cut")},
                             timeout=30)
    api = Api(server.url, created_key.json()["key"])
    try:
        kept = [api.upload(seed).json()["id"] for seed in range(100, 104)]

        # 1. The database unreachable: every operation is a 503 that says when to retry.
        pg_proxy.cut()
        for name, answer in every_operation(api, kept[0]).items():
            assert answer.status_code == 503, (name, answer.status_code, answer.text)
            assert_wait_503(answer)
        ready = httpx.get(f"{server.url}/readyz", timeout=30)
        assert_wait_503(ready)
        assert ready.json()["checks"]["database"].startswith("unreachable")
        assert ready.json()["checks"]["store"] == "ok"
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200

        # 2. Back: everything works again (the pool reconnects by itself).
        pg_proxy.restore()
        again = every_operation(api, kept[0])
        assert {n: a.status_code for n, a in again.items()} == {
            "upload": 201, "import": 400, "list": 200, "get": 200, "patch": 200,
            "batch_update": 200, "batch_delete": 200, "delete": 404, "usage": 200,
            "namespaces": 200, "keys": 201, "viewer": 200}, {n: a.text for n, a in again.items()}
        assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200

        # 3. Cuts and terminated backends while four clients upload, list and batch.
        statuses: Counter[str] = Counter()
        created: set[str] = set()
        deleted: set[str] = set()
        stop = threading.Event()
        lock = threading.Lock()

        def client(worker: int) -> None:
            rng = random.Random(worker)
            mine: list[str] = []
            while not stop.is_set():
                op = rng.choice(["upload", "upload", "list", "batch_update", "batch_delete",
                                 "get"])
                if op == "upload":
                    answer = api.upload(rng.randrange(1 << 30))
                    if answer.status_code == 201:
                        mine.append(answer.json()["id"])
                elif op == "list":
                    answer = api.http.get("/v1/media", params={"limit": 20})
                elif op == "get":
                    answer = api.http.get(f"/v1/media/{kept[1]}")
                elif op == "batch_update":
                    answer = api.http.patch("/v1/media/batch", json={
                        "ids": mine[-5:] or [kept[2]], "update": {"tags": f"w{worker}",
                                                                  "tag_mode": "add"}})
                else:
                    victims, mine = mine[:2], mine[2:]
                    answer = api.http.request("DELETE", "/v1/media/batch",
                                              json={"ids": victims or ["nonexistent1"]})
                    if answer.status_code == 200:
                        with lock:
                            deleted.update(victims)
                with lock:
                    statuses[f"{op} {answer.status_code}"] += 1
                    if op == "upload" and answer.status_code == 201:
                        created.add(answer.json()["id"])
                if answer.status_code == 503:
                    assert_wait_503(answer)
                assert answer.status_code < 500 or answer.status_code == 503, answer.text

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            clients = [pool.submit(client, w) for w in range(4)]
            for cycle in range(4):
                wanted = 20 * (cycle + 1)
                wait_until(lambda n=wanted: sum(statuses.values()) > n, "traffic")
                if cycle % 2:
                    terminate_backends(fresh_pg)
                else:
                    pg_proxy.cut()
                    time.sleep(1)  # an outage of a second under load (not a timing check)
                    pg_proxy.restore()
            stop.set()
            for future in clients:
                future.result()
        print(f"\nPostgreSQL cut under load: {dict(sorted(statuses.items()))}")
        assert not [s for s in statuses if s.endswith(" 500")]

        # 4. What is stored: every 201 kept, every 200 delete applied, no orphan, counters.
        database_url = direct_pg_url(fresh_pg)

        def consistent() -> bool:
            try:
                assert_consistent(stored_state(database_url, originals_dir(data_dir)))
            except AssertionError:
                return False
            return True

        wait_until(consistent, "reconciled: no orphan, counters exact")
        stored = stored_state(database_url, originals_dir(data_dir))
        rows: dict[str, Any] = {r["id"]: r for r in stored.rows}
        assert created <= set(rows), "an upload answered 201 was lost"
        assert all(rows[i]["deleted_at"] is not None for i in deleted)
        assert all(rows[i]["deleted_at"] is None for i in kept)
        assert "Traceback" not in server.log(), server.log()
    finally:
        api.close()
        stop_server(server)
