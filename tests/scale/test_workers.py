"""Several processes on one disk cache: ``--workers N`` and nodes sharing a data dir.

Two processes writing the same key at once must leave a whole, verified entry behind (and
never show a reader half of one); ``--workers 2`` must serve the same bytes whichever
worker answers, the workers filling the shared disk cache for each other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import multiprocessing
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx
from PIL import Image

from cache import DiskCache, Entry
from cache.disk import decode_entry
from tests.conftest import CorpusImage
from tests.scale.conftest import place

KEY = "team/uid/m.webp.v1"
ROUNDS = 120


def payloads() -> list[bytes]:
    """Distinct contents of different sizes (0.25-2 MB): a torn file cannot pass as one."""
    return [hashlib.sha256(bytes([n])).digest() * (8192 * (n + 1)) for n in range(8)]


def fill_and_read(root: str, worker: int, go: Event, results: Queue[tuple[int, ...]]) -> None:
    """One process: write the key over and over, reading it back after every write.

    Reports (worker, reads of an unknown content, reads of nothing, damaged entries dropped).
    """
    known = payloads()
    cache = DiskCache(root, max_bytes=1 << 30)

    async def run() -> tuple[int, int, int]:
        await cache.start()
        go.wait(30)
        unknown = empty = 0
        for n in range(ROUNDS):
            await cache.put(KEY, Entry.of(known[(n + worker) % len(known)]))
            got = await cache.get(KEY)
            if got is None:
                empty += 1
            elif got.data not in known:
                unknown += 1
        return unknown, empty, cache.dropped_damaged

    results.put((worker, *asyncio.run(run())))


def test_two_processes_fill_the_same_key_without_corruption(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    go = spawn.Event()
    queue: Queue[tuple[int, ...]] = spawn.Queue()
    workers = [spawn.Process(target=fill_and_read, args=(str(tmp_path), n, go, queue))
               for n in (0, 1)]
    for worker in workers:
        worker.start()
    go.set()  # both start writing together
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert sorted(r[0] for r in results) == [0, 1]
    for _worker, unknown, empty, damaged in results:
        # A reader only ever sees a whole entry: never a mix, never a half (which would be
        # dropped as damaged and read as nothing).
        assert (unknown, empty, damaged) == (0, 0, 0)
    final = DiskCache(tmp_path, max_bytes=1 << 30).path_for(KEY)
    entry = decode_entry(final.read_bytes())
    assert entry is not None and entry.data in payloads()
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []


def test_two_workers_serve_the_same_bytes_and_share_the_disk_cache(
        server_factory, corpus: list[CorpusImage]) -> None:  # type: ignore[no-untyped-def]
    # Refinement off: with it on, the lane may replace a provisional rendition with its final
    # one between two answers, and both are right (tests/transformer/origin covers that).
    server = server_factory({"IMGPRO_ROLE": "cdn", "IMGPRO_REFINE": "off"},
                            args=["--workers", "2"])
    photo = next(i for i in corpus if i.path.name == "photo-ladybird-2560x1600.jpg")
    place(server, "p", photo.data)
    paths = [f"/t/p.{ext}?size={size}" for ext in ("webp", "jpeg") for size in ("s", "m")]

    def fetch(path: str) -> tuple[str, int, str, bytes]:
        with httpx.Client(base_url=server.url, timeout=60) as client:  # a new connection each
            response = client.get(path)
            return path, response.status_code, response.headers.get("x-cache", ""), \
                response.content

    # One worker renders each rendition and writes it to the shared disk cache...
    first = [fetch(path) for path in paths]
    assert [status for _path, status, _layer, _body in first] == [200] * len(paths)
    cached = wait_for_files(server.data_dir / "cache", len(paths))
    # ...then concurrent requests on new connections reach both workers: the other one
    # finds the renditions on disk instead of rendering them again. Which worker accepts a
    # connection is the kernel's choice: a few rounds make "never the other one" unlikely.
    answers = list(first)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _round in range(5):
            answers += pool.map(fetch, paths * 10)
            if any(layer == "disk" for _path, _status, layer, _body in answers):
                break
    assert {status for _path, status, _layer, _body in answers} == {200}
    for path in paths:
        bodies = {body for p, _status, _layer, body in answers if p == path}
        assert len(bodies) == 1, f"{path}: workers disagree on the bytes"
        with Image.open(io.BytesIO(bodies.pop())) as image:
            assert min(image.size) == (320 if "size=s" in path else 640)
    layers = [layer for _path, _status, layer, _body in answers[len(paths):]]
    assert "disk" in layers, f"no worker read the other's rendition from disk: {layers}"
    assert "miss" not in layers, "a rendition on disk was rendered again"
    assert len(_children(server.process.pid)) == 2
    assert all(decode_entry(p.read_bytes()) is not None for p in cached)


def wait_for_files(root: Path, count: int, timeout: float = 10) -> list[Path]:
    """Disk cache writes finish just after the response: wait for them (no timing asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) == count, found
            return found
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    """Worker pids under the supervisor (from /proc; its resource tracker is no worker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found
