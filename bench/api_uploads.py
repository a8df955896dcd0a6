"""Upload and list throughput of the /v1 API on SQLite or PostgreSQL, through a real server.

    python bench/api_uploads.py --database sqlite --uploads 300 --concurrency 8
    python bench/api_uploads.py --database postgresql://postgres@127.0.0.1/test --uploads 300

Starts ``imgpro serve`` on a free port with a fresh data dir (and, for PostgreSQL, a fresh
database that is dropped afterwards), creates a key on the ``max`` plan, uploads one corpus
photo ``--uploads`` times from ``--concurrency`` clients, then walks ``GET /v1/media`` pages
and reads ``GET /v1/usage``. Prints requests/s and latency percentiles per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import load_corpus, start_server, stop_server  # noqa: E402


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms"


async def run(url: str, key: str, photo: bytes, uploads: int, concurrency: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120,
                                 limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []

        async def upload(i: int) -> None:
            async with gate:
                started = time.perf_counter()
                response = await client.post("/v1/upload", files={"file": ("p.jpg", photo)},
                                             data={"namespace": f"ns-{i % 5}", "tags": "a,b"})
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(upload(i) for i in range(uploads)))
        elapsed = time.perf_counter() - started
        mb = uploads * len(photo) / 1e6
        print(f"upload   {uploads / elapsed:7.1f} req/s  {mb / elapsed:6.1f} MB/s  "
              f"{percentiles(latencies)}")

        for name, path in (("list", "/v1/media?limit=100&tags=a"), ("usage", "/v1/usage")):
            samples: list[float] = []

            async def read(path: str = path, samples: list[float] = samples) -> None:
                async with gate:
                    t0 = time.perf_counter()
                    (await client.get(path)).raise_for_status()
                    samples.append(time.perf_counter() - t0)

            started = time.perf_counter()
            await asyncio.gather(*(read() for _ in range(uploads)))
            elapsed = time.perf_counter() - started
            print(f"{name:8} {uploads / elapsed:7.1f} req/s  {'':13}  {percentiles(samples)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="sqlite", help="sqlite or a postgresql:// URL")
    parser.add_argument("--uploads", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    photo = next(c for c in load_corpus() if c.format == "jpeg" and c.bytes < 1_000_000).data
    data_dir = Path(tempfile.mkdtemp(prefix="imgpro-bench-"))
    env = {"IMGPRO_RATE_LIMITS": "off"}
    admin_url = database = None
    if args.database != "sqlite":
        import asyncpg

        admin_url = args.database
        database = f"imgpro_bench_{secrets.token_hex(4)}"

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f'CREATE DATABASE "{database}"'))
        env["IMGPRO_DATABASE_URL"] = admin_url.rsplit("/", 1)[0] + f"/{database}"
    server = start_server(data_dir, env, ["--workers", str(args.workers)])
    try:
        email = f"bench-{secrets.token_hex(4)}@example.com"
        key = httpx.post(f"{server.url}/v1/keys", json={"email": email}).json()["key"]
        subprocess.run([sys.executable, "-m", "api", "accounts", "set-plan", email, "max"],
                       cwd=ROOT, env={**server.env}, check=True, capture_output=True)
        print(f"{args.database.split('://')[0]}, {args.workers} worker(s), {args.uploads} uploads "
              f"of {len(photo)} bytes, {args.concurrency} clients, {os.cpu_count()} cores")
        asyncio.run(run(server.url, key, photo, args.uploads, args.concurrency))
    finally:
        stop_server(server)
        if database is not None:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
