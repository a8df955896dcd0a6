"""Full filesystems, made real: a small tmpfs mounted (as root) where the disk cache, or the
upload spool, lives, so writes fail with ENOSPC exactly as on a full disk (no LD_PRELOAD, no
mock). Without root (mount refused) these tests skip with the reason.

- The disk cache's filesystem full: every rendition is still served (200, the right image),
  the failed writes are logged as warnings, nothing else is affected; once there is room again
  the cache fills again.
- The spool's filesystem full: an upload too large to be kept in memory is a 503 +
  Retry-After and leaves nothing behind; a small one (kept in memory) is stored.
- The originals' filesystem full: an upload that does not fit is a 503 + Retry-After and
  leaves nothing behind (no half file, no row, nothing counted).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import fresh_email, tiny_png
from tests.conftest import CorpusImage, start_server, stop_server
from tests.faults.conftest import (
    assert_consistent,
    assert_wait_503,
    noise_png,
    originals_dir,
    stored_state,
    wait_until,
)
from tests.scale.conftest import place

Mount = Callable[[Path, int], Path]


@pytest.fixture
def small_filesystem() -> Iterator[Mount]:
    """``mount(path, kib)``: a tmpfs of ``kib`` KiB at ``path``; unmounted after the test."""
    mounted: list[Path] = []

    def mount(path: Path, kib: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0755", "tmpfs",
                               str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def used(path: Path) -> int:
    return shutil.disk_usage(path).used


def test_disk_cache_filesystem_full(tmp_path: Path, small_filesystem: Mount,
                                    corpus: list[CorpusImage]) -> None:
    data_dir = tmp_path / "node"
    cache = small_filesystem(data_dir / "cache", 256)
    # Refinement off: a refined rendition written between the rounds would rightly differ
    # from the provisional one of the first round.
    server = start_server(data_dir, {"IMGPRO_MEMORY_CACHE_MB": "0", "IMGPRO_DISK_CACHE_MB": "64",
                                     "IMGPRO_ROLE": "cdn", "IMGPRO_REFINE": "off"})
    photo = next(i for i in corpus if i.path.name == "photo-yellowflower-1920x1080.jpg")
    place(server, "storm", photo.data)
    variants = [f"{fmt}?size={size}" for size in ("s", "m", "l") for fmt in ("webp", "jpeg",
                                                                             "png")]
    http = httpx.Client(base_url=server.url, timeout=120)
    try:
        first = {v: http.get(f"/t/storm.{v}") for v in variants}
        for variant, answer in first.items():
            assert answer.status_code == 200, (variant, answer.text)
            assert answer.headers["content-type"] == f"image/{variant.split('?')[0]}"
            assert int(answer.headers["content-length"]) == len(answer.content)
        wait_until(lambda: "disk cache write failed" in server.log(), "a failed cache write")
        assert used(cache) <= 256 * 1024
        second = {v: http.get(f"/t/storm.{v}") for v in variants}
        assert all(a.status_code == 200 and a.content == first[v].content
                   for v, a in second.items())
        layers = {a.headers["x-cache"] for a in second.values()}
        assert "miss" in layers  # what could not be written is made again, not failed
        print(f"\ndisk cache full: {len(variants)} renditions, 2 rounds, all 200; second round "
              f"X-Cache {sorted(layers)}; cache fs {used(cache) // 1024} KiB of 256 KiB")

        for entry in cache.iterdir():  # room again: the cache works again
            shutil.rmtree(entry, ignore_errors=True)
        assert http.get("/t/storm.webp?size=s").status_code == 200
        wait_until(lambda: any(p.is_file() and not p.name.endswith(".tmp")
                               for p in cache.rglob("*")), "a cache file written")
        assert http.get("/t/storm.webp?size=s").headers["x-cache"] == "disk"
        assert "Traceback" not in server.log(), server.log()
    finally:
        http.close()
        stop_server(server)


def test_spool_filesystem_full(tmp_path: Path, small_filesystem: Mount) -> None:
    data_dir = tmp_path / "node"
    small_filesystem(data_dir / "spool", 512)
    server = start_server(data_dir, {})
    http = httpx.Client(base_url=server.url, timeout=120)
    try:
        key = http.post("/v1/keys", json={"email": fresh_email("full")}).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        large = http.post("/v1/upload", headers=auth,
                          files={"file": ("big.png", noise_png(3_000_000, seed=1))})
        assert_wait_503(large)
        small = http.post("/v1/upload", headers=auth, files={"file": ("a.png", tiny_png())})
        assert small.status_code == 201, small.text
        stored = stored_state(f"sqlite+aiosqlite:///{data_dir / 'imgpro.db'}",
                              originals_dir(data_dir))
        assert_consistent(stored)
        assert stored.ids() == {small.json()["id"]}
        assert not list((data_dir / "spool").iterdir())
        assert "spool directory" in server.log() and "Traceback" not in server.log()
    finally:
        http.close()
        stop_server(server)


def test_originals_filesystem_full(tmp_path: Path, small_filesystem: Mount) -> None:
    data_dir = tmp_path / "node"
    originals = small_filesystem(data_dir / "originals", 1024)
    server = start_server(data_dir, {})
    http = httpx.Client(base_url=server.url, timeout=120)
    try:
        key = http.post("/v1/keys", json={"email": fresh_email("full")}).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        fits = http.post("/v1/upload", headers=auth, files={"file": ("a.png", tiny_png())})
        assert fits.status_code == 201, fits.text
        too_big = http.post("/v1/upload", headers=auth,
                            files={"file": ("big.png", noise_png(3_000_000, seed=2))})
        assert_wait_503(too_big)
        stored = stored_state(f"sqlite+aiosqlite:///{data_dir / 'imgpro.db'}",
                              originals_dir(data_dir))
        assert_consistent(stored)
        assert stored.ids() == {fits.json()["id"]}
        assert not [p for p in originals.rglob("*.tmp")]  # no half-written file left
        assert http.get("/v1/usage", headers=auth).json()["uploads_used"] == 1
        assert "Traceback" not in server.log(), server.log()
    finally:
        http.close()
        stop_server(server)
