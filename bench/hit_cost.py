"""Our own code's cost of one memory-cache hit, in-process: the ASGI app called directly.

What a hit costs in imgpro itself (parse, lookup, revalidation window, metrics, access log,
send), without uvicorn, the socket or a load generator, so it can be compared with the
req/s of `python -m bench.compare` to see how much of a hit is ours.

    python bench/hit_cost.py                  # access log as configured (IMGPRO_ACCESS_LOG)
    IMGPRO_ACCESS_LOG=false python bench/hit_cost.py --profile
    python bench/hit_cost.py --through protocol   # raw request bytes into our HTTP protocol

``--through asgi`` (the default) calls the ASGI app, the path a hit took before the protocol
answered hits itself; ``--through protocol`` feeds request bytes to
``api.serving.http_protocol`` with a transport that keeps what is written, so httptools' parse
and the response's assembly count too, and only the socket and event loop wake-ups are left out.

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

from bench.corpus import corpus_dir  # noqa: E402


async def lifespan_step(app: Any, kind: str, queue: asyncio.Queue, out: asyncio.Queue) -> None:
    """Send ``lifespan.<kind>`` to an app whose lifespan task reads ``queue`` and writes ``out``."""
    await queue.put({"type": f"lifespan.{kind}"})
    message = await out.get()
    if not message["type"].endswith(".complete"):
        raise RuntimeError(message)


class KeepingTransport(asyncio.Transport):
    """What the protocol writes, kept (the last 10 writes) instead of sent."""

    def __init__(self, written: list[bytes]) -> None:
        super().__init__()
        self.written = written

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))
        del self.written[:-10]

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def protocol_feeder(app: Any) -> tuple[Any, list[bytes]]:
    """``data_received`` of a new connection of our HTTP protocol around ``app``, and the list
    its (last 10) writes land in. Call it from a running event loop."""
    import uvicorn
    from uvicorn.server import ServerState

    from api.serving.http_protocol import BoundedHttpToolsProtocol

    config = uvicorn.Config(app, proxy_headers=False, lifespan="off", log_level="warning")
    config.load()
    protocol = BoundedHttpToolsProtocol(config, ServerState(), {})
    written: list[bytes] = []
    protocol.connection_made(KeepingTransport(written))
    return protocol.data_received, written


async def measure(photo: Path, hits: int, profile: bool, through: str) -> float:
    os.environ.setdefault("IMGPRO_ROLE", "cdn")
    from api.serving.app import create_app
    from transformer.originals import open_store

    store = open_store(f"file://{os.environ['IMGPRO_DATA_DIR']}/originals")
    await store.put("bench", "hit", photo.read_bytes())
    await store.close()
    app = create_app()
    queue: asyncio.Queue = asyncio.Queue()
    out: asyncio.Queue = asyncio.Queue()
    life = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   queue.get, out.put))
    await lifespan_step(app, "startup", queue, out)
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
    if through == "protocol":
        request = f"GET {path}?size=s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        feed, written = protocol_feeder(app)
        feed(request)
        statuses.append(int(written[-1].split(b" ", 2)[1]))
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    if through == "protocol":
        for _ in range(hits):
            feed(request)
        statuses.append(int(written[-1].split(b" ", 2)[1]))
    else:
        for _ in range(hits):
            await app(dict(scope, state={}), receive, send)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    await lifespan_step(app, "shutdown", queue, out)
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
    parser.add_argument("--photo", type=Path, default=None,
                        help="default: the storm photo of the corpus (IMGPRO_CORPUS)")
    parser.add_argument("--through", choices=("asgi", "protocol"), default="asgi",
                        help="call the ASGI app, or feed request bytes to our HTTP protocol")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["IMGPRO_DATA_DIR"] = data_dir
        photo = args.photo or corpus_dir() / "photo-storm-1920x1280.jpg"
        micros = asyncio.run(measure(photo, args.hits, args.profile, args.through))
    print(f"{micros:.1f} us of our code per memory hit through {args.through} "
          f"({args.hits} hits)")


if __name__ == "__main__":
    main()
