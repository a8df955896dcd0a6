"""Provisional, then final: the refine lane over a real ``imgpro serve --role cdn``.

A JPEG/WebP/AVIF miss is answered with the fast encode (short max-age, its own ETag,
``X-Rendition: provisional``); the lane re-encodes it at the final setting when the transform
pool has an idle thread and swaps it in, after which the same URL answers ``immutable`` with a
new ETag. Waits here are for events (a header changing, a counter moving) with a generous
deadline, never assertions on how long something took.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from cache import DiskCache, Entry
from tests.conftest import CorpusImage, RunningServer
from transformer import ENCODER_SETTINGS_VERSION, transform
from transformer.origin.refine import RefineLane

TEAM = "t"


IMMUTABLE = "public, max-age=31536000, immutable"
METRICS_TOKEN = "metrics-token-of-the-refine-tests"
CDN = {"IMGPRO_ROLE": "cdn", "IMGPRO_METRICS_TOKEN": METRICS_TOKEN}
WAIT = 120.0


def place(data_dir: Path, uid: str, data: bytes) -> None:
    target = data_dir / "originals" / TEAM / uid
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def metric(server: RunningServer, name: str, labels: str = "") -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30,
                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + "$", text, re.M)
    return float(found.group(1)) if found else 0.0


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {WAIT:g} s for {what}")
        time.sleep(0.2)


def dims(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


@pytest.fixture
def photo(corpus: list[CorpusImage]) -> CorpusImage:
    return next(i for i in corpus if i.path.name == "photo-yellowflower-1920x1080.jpg")


@pytest.fixture
def cdn(server_factory, photo: CorpusImage) -> RunningServer:  # type: ignore[no-untyped-def]
    server: RunningServer = server_factory(CDN)
    place(server.data_dir, "p", photo.data)
    return server


@pytest.mark.parametrize("ext", ["webp", "avif", "jpeg"])
def test_provisional_then_final(cdn: RunningServer, ext: str) -> None:
    url = f"{cdn.url}/{TEAM}/p.{ext}?size=m"
    first = httpx.get(url, timeout=60)
    assert first.status_code == 200
    assert first.headers["x-rendition"] == "provisional"
    assert first.headers["cache-control"] == "public, max-age=300"
    assert "immutable" not in first.headers["cache-control"]
    provisional_etag = first.headers["etag"]

    wait_for(lambda: httpx.get(url, timeout=60).headers["x-rendition"] == "final",
             f"the final {ext}")
    final = httpx.get(url, timeout=60)
    assert final.headers["cache-control"] == IMMUTABLE
    assert final.headers["etag"] != provisional_etag
    assert final.content != first.content
    assert int(final.headers["content-length"]) == len(final.content)
    assert final.headers["content-type"] == f"image/{ext}"
    if ext != "avif":
        assert dims(final.content) == dims(first.content) == (1138, 640)
    assert metric(cdn, "imgpro_refine_total", 'result="refined"') >= 1

    # Revalidation: only the current ETag is "not modified"; the provisional one gets the
    # final body with a 200.
    stale = httpx.get(url, headers={"If-None-Match": provisional_etag}, timeout=60)
    assert stale.status_code == 200 and stale.content == final.content
    current = httpx.get(url, headers={"If-None-Match": final.headers["etag"]}, timeout=60)
    assert current.status_code == 304 and current.headers["x-rendition"] == "final"
    head = httpx.head(url, timeout=60)
    assert head.headers["etag"] == final.headers["etag"] and head.content == b""


def test_png_is_final_on_the_miss_and_skips_the_lane(cdn: RunningServer) -> None:
    response = httpx.get(f"{cdn.url}/{TEAM}/p.png?size=s", timeout=60)
    assert response.headers["x-rendition"] == "final"
    assert response.headers["cache-control"] == IMMUTABLE
    assert metric(cdn, "imgpro_refine_queue_depth") == 0
    assert metric(cdn, "imgpro_refine_total", 'result="refined"') == 0


def test_hits_during_the_swap_are_whole_answers(cdn: RunningServer) -> None:
    """Every answer pairs its ETag with its own bytes, provisional or final, never a mix."""
    url = f"{cdn.url}/{TEAM}/p.webp?size=l"
    seen: dict[str, bytes] = {}
    stop = threading.Event()
    errors: list[str] = []

    def hammer() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                answer = client.get(url)
                etag, body = answer.headers["etag"], answer.content
                if int(answer.headers["content-length"]) != len(body):
                    errors.append("length")
                if seen.setdefault(etag, body) != body:
                    errors.append(f"{etag} came with two bodies")
                expected = "final" if answer.headers["cache-control"] == IMMUTABLE else \
                    "provisional"
                if answer.headers["x-rendition"] != expected:
                    errors.append("x-rendition does not match cache-control")

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(seen) >= 2, "the swap to be seen by the hammering clients")
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert errors == []
    assert len(seen) == 2  # the provisional and the final, nothing else


def test_refine_off_serves_the_fast_encode_as_final(server_factory, photo: CorpusImage) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({**CDN, "IMGPRO_REFINE": "off"})
    place(server.data_dir, "p", photo.data)
    response = httpx.get(f"{server.url}/{TEAM}/p.webp?size=m", timeout=60)
    assert response.headers["x-rendition"] == "final"
    assert response.headers["cache-control"] == IMMUTABLE
    expected = transform(photo.data, "m", "webp", effort="fast").data
    assert response.content == expected  # the fast encode, byte for byte
    assert metric(server, "imgpro_refine_queue_depth") == 0


def test_with_both_caches_off_every_miss_is_provisional_and_nothing_queues(
        server_factory, photo: CorpusImage) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({**CDN, "IMGPRO_MEMORY_CACHE_MB": "0",
                             "IMGPRO_DISK_CACHE_MB": "0"})
    place(server.data_dir, "p", photo.data)
    for _ in range(2):
        response = httpx.get(f"{server.url}/{TEAM}/p.webp?size=s", timeout=60)
        assert response.headers["x-rendition"] == "provisional"
        assert response.headers["x-cache"] == "miss"
    assert metric(server, "imgpro_refine_queue_depth") == 0
    assert metric(server, "imgpro_refine_total", 'result="refined"') == 0


def test_provisional_entries_on_disk_are_refined_after_a_restart(
        server_factory, tmp_path: Path, photo: CorpusImage) -> None:  # type: ignore[no-untyped-def]
    """What a node killed before its lane ran leaves on disk: found at start-up, refined
    without any request asking for it."""
    data_dir = tmp_path / "restarted"
    uids = [f"r{i}" for i in range(3)]

    async def leave_provisional_entries() -> None:
        disk = DiskCache(data_dir / "cache", 64 * 1024 * 1024)
        await disk.start()
        fast = transform(photo.data, "s", "webp", effort="fast").data
        for uid in uids:
            place(data_dir, uid, photo.data)
            key = f"{TEAM}/{uid}/s.webp.{ENCODER_SETTINGS_VERSION}"
            assert await disk.put(key, Entry.of(fast, final=False))

    asyncio.run(leave_provisional_entries())
    server = server_factory(CDN, data_dir=data_dir)
    wait_for(lambda: metric(server, "imgpro_refine_total", 'result="refined"') >= len(uids),
             "the entries left provisional on disk to be refined")
    for uid in uids:
        response = httpx.get(f"{server.url}/{TEAM}/{uid}.webp?size=s", timeout=60)
        assert response.headers["x-rendition"] == "final", uid
        assert response.headers["x-cache"] in ("memory", "disk")  # refined, not re-rendered


def test_the_lane_waits_while_the_pool_is_busy(server_factory, corpus: list[CorpusImage]) -> None:  # type: ignore[no-untyped-def]
    """Under a steady stream of misses the lane starts nothing; once the stream stops, it
    catches up. (If the lane ignored the pool, its low-priority process would still use the
    second core and refine during the load, and this test would fail.)"""
    server = server_factory({**CDN, "IMGPRO_TRANSFORM_THREADS": "1"})
    big = max(corpus, key=lambda i: i.width * i.height)
    small = min(corpus, key=lambda i: i.width * i.height)
    for i in range(400):
        place(server.data_dir, f"load{i}", big.data)
    for i in range(3):
        place(server.data_dir, f"s{i}", small.data)

    stop = threading.Event()
    counter = iter(range(400))
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                client.get(f"{server.url}/{TEAM}/load{n}.png?size=l")  # a miss, final at once

    loaders = [threading.Thread(target=load) for _ in range(3)]
    for loader in loaders:
        loader.start()
    try:
        time.sleep(1.0)  # the load is under way: the pool's one thread is never idle
        for i in range(3):
            answer = httpx.get(f"{server.url}/{TEAM}/s{i}.webp?size=s", timeout=120)
            assert answer.headers["x-rendition"] == "provisional"
        loads_before = metric(server, "imgpro_transform_seconds_count",
                              'format="png",size="l"')
        wait_for(lambda: metric(server, "imgpro_transform_seconds_count",
                                'format="png",size="l"') >= loads_before + 6,
                 "six more misses under load")
        assert metric(server, "imgpro_refine_total", 'result="refined"') == 0
        assert metric(server, "imgpro_refine_queue_depth") == 3
    finally:
        stop.set()
        for loader in loaders:
            loader.join()
    wait_for(lambda: metric(server, "imgpro_refine_total", 'result="refined"') == 3,
             "the lane to catch up once the load stopped")


def test_a_full_queue_drops_its_oldest_key_and_counts_it() -> None:
    refined: list[str] = []
    open_gate = asyncio.Event()

    async def scenario() -> tuple[float, float]:
        from transformer.origin import metrics

        async def refine(key: str) -> None:
            refined.append(key)

        lane = RefineLane(2, open_gate.wait, refine)
        lane.start()
        before = metrics.REFINE_DROPPED._value.get()
        for key in ("a", "b", "c", "b", "d"):  # "b" again: already queued, not a new entry
            lane.offer(key)
        queued = len(lane)
        open_gate.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(refined) == 2:
                break
        await lane.close()
        return queued, metrics.REFINE_DROPPED._value.get() - before

    queued, dropped = asyncio.run(scenario())
    assert queued == 2
    assert dropped == 2  # "a", then "b" made room for "c" and "d"
    assert refined == ["c", "d"]

