"""16 concurrent uploads of 60 MB: the server's peak RSS stays within what the configuration
allows bodies to hold in memory, measured (psutil, sampled) rather than timed.

Each body in flight holds at most a spool buffer (``SPOOL_ABOVE``) and one read-back block
(``READ_BLOCK``) in memory; the rest is in its temporary file. The body budget decides how
many are in flight at once (``IMGPRO_BODY_BUDGET_MB`` // body size); the others wait for room,
holding nothing (TCP keeps their bytes in the client). Before the spool every body was held
whole plus a copy: on main this same test grew the process by about 930 MB.
"""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path

import httpx
import psutil

from api.intake.spool import READ_BLOCK, SPOOL_ABOVE
from tests.api.conftest import fresh_email, tiny_png
from tests.conftest import start_server, stop_server
from tests.faults.conftest import (
    METRICS,
    METRICS_AUTH,
    assert_consistent,
    noise_png,
    originals_dir,
    stored_state,
)

MB = 1024 * 1024
BODIES = 16
BODY_BUDGET_MB = 256
SLACK = 64 * MB
"""Allocator and interpreter noise around the bodies themselves (thread stacks, parser
state, the probe's libvips header read)."""


def test_sixteen_concurrent_60_mb_bodies_stay_within_the_budget(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    server = start_server(data_dir, {**METRICS, "IMGPRO_BODY_BUDGET_MB": str(BODY_BUDGET_MB),
                                     "IMGPRO_BODY_BUDGET_WAIT": "120"})
    image = noise_png(60 * MB, seed=3)
    at_once = max(1, min(BODIES, BODY_BUDGET_MB * MB // len(image)))
    allowed = at_once * (2 * SPOOL_ABOVE + READ_BLOCK) + SLACK
    process = psutil.Process(server.process.pid)
    try:
        key = httpx.post(f"{server.url}/v1/keys", json={"email": fresh_email("rss")},
                         timeout=30).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        warm = httpx.post(f"{server.url}/v1/upload", headers=auth, timeout=60,
                          files={"file": ("warm.png", tiny_png())})
        assert warm.status_code == 201
        idle = process.memory_info().rss
        peak = idle
        reserved_seen = 0.0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak, reserved_seen
            with httpx.Client(timeout=10, headers=METRICS_AUTH) as client:
                ticks = 0
                while not stop.wait(0.005):
                    peak = max(peak, process.memory_info().rss)
                    ticks += 1
                    if ticks % 10:
                        continue
                    for line in client.get(f"{server.url}/metrics").text.splitlines():
                        if line.startswith("imgpro_body_budget_reserved_bytes "):
                            reserved_seen = max(reserved_seen, float(line.split()[1]))

        def upload(n: int) -> httpx.Response:
            with httpx.Client(timeout=600) as client:
                return client.post(f"{server.url}/v1/upload", headers=auth,
                                   files={"file": (f"{n}.png", image)})

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(BODIES) as pool:
                answers = list(pool.map(upload, range(BODIES)))
        finally:
            stop.set()
            sampler.join()

        assert [a.status_code for a in answers] == [201] * BODIES, [a.text for a in answers]
        growth = peak - idle
        print(f"\n{BODIES} x {len(image) / MB:.0f} MB at once: RSS {idle / MB:.0f} -> "
              f"{peak / MB:.0f} MB (+{growth / MB:.0f} MB; allowed +{allowed / MB:.0f} MB for "
              f"{at_once} bodies in flight); budget reserved at most {reserved_seen / MB:.0f} MB")
        assert growth <= allowed
        assert reserved_seen <= BODY_BUDGET_MB * MB
        stored = stored_state(f"sqlite+aiosqlite:///{data_dir / 'imgpro.db'}",
                              originals_dir(data_dir))
        assert_consistent(stored)
        assert len(stored.rows) == BODIES + 1
        assert all(r["filesize"] == len(image) for r in stored.rows if r["id"] !=
                   warm.json()["id"])
        assert not any((data_dir / "spool").iterdir())
        assert "Traceback" not in server.log(), server.log()
    finally:
        stop_server(server)
