"""Our own code's cost of one memory-cache hit, in-process: the ASGI app called directly.

What a hit costs in imgpro itself (parse, lookup, revalidation window, metrics, access log,
send), without uvicorn, the socket or a load generator, so it can be compared with the
req/s of `python -m bench.compare` to see how much of a hit is ours.

    python bench/hit_cost.py                  # access log as configured (IMGPRO_ACCESS_LOG)
    IMGPRO_ACCESS_LOG=false python bench/hit_cost.py --profile

It stores one corpus photo (``--photo``) under a temporary data dir and asks for its s WebP
rendition.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("IMGPRO_CORPUS") or ROOT.parent / "shared" / "corpus")


async def _lifespan(app: Any, kind: str, queue: asyncio.Queue, out: asyncio.Queue) -> None:
    await queue.put({"type": f"lifespan.{kind}"})
    message = await out.get()
    if not message["type"].endswith(".complete"):
        raise RuntimeError(message)


async def measure(photo: Path, hits: int, profile: bool) -> float:
    os.environ.setdefault("IMGPRO_ROLE", "cdn")
    from api.app import create_app
    from transformer.store import open_store

    store = open_store(f"file://{os.environ['IMGPRO_DATA_DIR']}/originals")
    await store.put("bench", "hit", photo.read_bytes())
    await store.close()
    app = create_app()
    queue: asyncio.Queue = asyncio.Queue()
    out: asyncio.Queue = asyncio.Queue()
    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   queue.get, out.put))
    await _lifespan(app, "startup", queue, out)
    path = "/bench/hit.webp"
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"size=s", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8080), "scheme": "http",
             "http_version": "1.1", "root_path": "", "asgi": {"version": "3.0"}}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(20):  # render once, then warm the memory layer
        await app(dict(scope, state={}), receive, send)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(hits):
        await app(dict(scope, state={}), receive, send)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    await _lifespan(app, "shutdown", queue, out)
    await life
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected statuses {set(statuses)}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return elapsed / hits * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the hits (slower)")
    parser.add_argument("--photo", type=Path, default=CORPUS / "photo-storm-1920x1280.jpg")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["IMGPRO_DATA_DIR"] = data_dir
        micros = asyncio.run(measure(args.photo, args.hits, args.profile))
    print(f"{micros:.1f} us of our code per memory hit ({args.hits} hits)")


if __name__ == "__main__":
    main()
