"""A worker killed with SIGKILL: mid-upload (between storing the original and committing its
row), and during a stream of uploads. What the clients see, and what is stored afterwards:
every 201 kept, no original without a row once the reconciler has run, counters exact."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import psutil

from tests.api.conftest import fresh_email, tiny_png
from tests.conftest import RunningServer, start_server, stop_server
from tests.faults.conftest import (
    METRICS,
    assert_consistent,
    direct_pg_url,
    metric,
    noise_png,
    originals_dir,
    stored_state,
    wait_until,
)

RECONCILE_FAST = {"IMGPRO_RECONCILE_SECONDS": "1", "IMGPRO_ORPHAN_GRACE_SECONDS": "2",
                  **METRICS}


def new_key(server: RunningServer) -> str:
    answer = httpx.post(f"{server.url}/v1/keys", json={"email": fresh_email("kill")}, timeout=30)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


def test_worker_killed_between_original_and_row_leaves_no_orphan(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    server = start_server(data_dir, RECONCILE_FAST)
    key = new_key(server)
    # Hold SQLite's write lock: the upload stores its original, then waits for the lock to
    # commit its row; that is the moment the worker dies.
    lock = sqlite3.connect(data_dir / "imgpro.db", isolation_level=None, timeout=30)
    lock.execute("BEGIN IMMEDIATE")
    outcome: list[object] = []

    def upload() -> None:
        try:
            outcome.append(httpx.post(f"{server.url}/v1/upload", timeout=60,
                                      headers={"Authorization": f"Bearer {key}"},
                                      files={"file": ("a.png", tiny_png(seed=5))}))
        except httpx.TransportError as exc:
            outcome.append(exc)

    client = threading.Thread(target=upload)
    client.start()
    originals = data_dir / "originals"
    wait_until(lambda: any(p.is_file() for p in originals.rglob("*")), "the original stored")
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    lock.rollback()
    lock.close()
    client.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError), outcome

    database_url = f"sqlite+aiosqlite:///{data_dir / 'imgpro.db'}"
    before = stored_state(database_url, originals_dir(data_dir))
    assert before.rows == [] and len(before.originals) == 1  # the orphan the crash made
    ((team, uid),) = before.originals

    restarted = start_server(data_dir, RECONCILE_FAST)
    try:
        wait_until(lambda: not stored_state(database_url, originals_dir(data_dir)).originals,
                   "the reconciler removed the orphan")
        assert metric(restarted.url, "imgpro_reconcile_orphans_removed_total") == 1
        assert metric(restarted.url, "imgpro_reconcile_missing_originals") == 0
        after = stored_state(database_url, originals_dir(data_dir))
        assert_consistent(after)
        assert after.teams[team] == {"storage": 0, "uploads": 0}
        assert httpx.get(f"{restarted.url}/{team}/{uid}.png", timeout=30).status_code == 404
        again = httpx.post(f"{restarted.url}/v1/upload", timeout=60,
                           headers={"Authorization": f"Bearer {key}"},
                           files={"file": ("a.png", tiny_png(seed=5))})
        assert again.status_code == 201, again.text
        assert "reconcile: removed original" in restarted.log()
        assert "Traceback" not in restarted.log()
    finally:
        stop_server(restarted)


def worker_pids(server: RunningServer, count: int) -> set[int]:
    """The pids of the workers answering /healthz (each answer names its worker)."""
    seen: set[int] = set()

    def more() -> bool:
        with httpx.Client(timeout=10) as client:  # a new connection: maybe another worker
            seen.add(int(client.get(f"{server.url}/healthz").json()["pid"]))
        return len(seen) >= count

    wait_until(more, f"{count} workers answering")
    return seen


def test_worker_kill_9_during_a_stream_of_uploads(tmp_path: Path, fresh_pg: str) -> None:
    database_url = direct_pg_url(fresh_pg)
    data_dir = tmp_path / "node"
    server = start_server(data_dir, {**RECONCILE_FAST, "IMGPRO_ORPHAN_GRACE_SECONDS": "5",
                                     "IMGPRO_DATABASE_URL": database_url},
                          args=["--workers", "2"])
    try:
        key = new_key(server)
        before = worker_pids(server, 2)
        images = [noise_png(1_500_000, seed) for seed in range(4)]
        outcomes: list[httpx.Response | httpx.TransportError] = []
        ok_count = threading.Semaphore(0)

        def stream(worker: int) -> None:
            for n in range(10):
                try:
                    with httpx.Client(timeout=60) as client:  # spread over both workers
                        answer = client.post(f"{server.url}/v1/upload",
                                             headers={"Authorization": f"Bearer {key}"},
                                             files={"file": (f"{n}.png", images[worker])})
                    outcomes.append(answer)
                    if answer.status_code == 201:
                        ok_count.release()
                except httpx.TransportError as exc:
                    outcomes.append(exc)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            streams = [pool.submit(stream, w) for w in range(4)]
            for _ in range(8):  # some uploads through, more in flight: now kill a worker
                ok_count.acquire(timeout=60)
            victim = sorted(before)[0]
            port = int(server.url.rsplit(":", 1)[1])
            # ... while it holds a client connection (one per upload here): mid-upload.
            wait_until(lambda: any(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
                                   for c in psutil.Process(victim).net_connections()),
                       "the victim busy with an upload")
            os.kill(victim, signal.SIGKILL)
            for future in streams:
                future.result()

        statuses = [o.status_code if isinstance(o, httpx.Response) else "cut" for o in outcomes]
        assert set(statuses) <= {201, "cut"}, statuses  # never a 500: only cut connections
        created = {o.json()["id"] for o in outcomes
                   if isinstance(o, httpx.Response) and o.status_code == 201}
        after_kill = worker_pids(server, 2)  # the supervisor started a new worker
        assert victim not in after_kill and len(after_kill) == 2
        assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == "zombie"

        def reconciled() -> bool:
            try:
                assert_consistent(stored_state(database_url, originals_dir(data_dir)))
            except AssertionError:
                return False
            return True

        wait_until(reconciled, "no orphan left, counters exact")
        stored = stored_state(database_url, originals_dir(data_dir))
        assert created <= stored.ids(), "an upload answered 201 was lost"
        cut = statuses.count("cut")
        assert len(stored.rows) - len(created) <= cut  # a cut upload may have committed
        assert len(stored.rows) == len(stored.originals) == len(stored.live)
        print(f"\nkill -9 during uploads: {statuses.count(201)} x 201, {cut} cut connections, "
              f"{len(stored.rows)} rows = originals, "
              f"{metric(server.url, 'imgpro_reconcile_orphans_removed_total'):.0f} orphans "
              "removed")
        assert "Traceback" not in server.log(), server.log()
    finally:
        stop_server(server)
