from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import pytest

from cache import DiskCache, Entry
from cache.disk import HEADER_SIZE, MAGIC, blob_size, decode_entry, encode_entry


def entry(n: int, fill: bytes = b"x") -> Entry:
    return Entry.of(fill * n)


async def test_round_trip_and_survives_restart(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=10_000_000)
    await cache.start()
    original = entry(5000, b"ab")
    assert await cache.put("t/u1/m.webp", original)
    got = await cache.get("t/u1/m.webp")
    assert got == original

    reopened = DiskCache(tmp_path, max_bytes=10_000_000)
    await reopened.start()
    assert reopened.approximate_bytes == blob_size("t/u1/m.webp", original)
    assert await reopened.get("t/u1/m.webp") == original
    assert await reopened.get("t/u1/s.webp") is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[: len(blob) // 2],  # torn write
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),  # flipped bit
        lambda blob: b"",  # empty file
        lambda blob: b"JUNK" + blob[4:],  # wrong magic
        lambda blob: blob + b"extra",  # trailing garbage
    ],
)
async def test_damaged_entry_is_dropped_not_served(tmp_path: Path, damage) -> None:
    cache = DiskCache(tmp_path, max_bytes=10_000_000)
    await cache.start()
    await cache.put("t/u1/m.jpeg", entry(3000, b"q"))
    path = cache.path_for("t/u1/m.jpeg")
    path.write_bytes(damage(path.read_bytes()))
    assert await cache.get("t/u1/m.jpeg") is None
    assert not path.exists()
    assert cache.dropped_damaged == 1


async def test_write_is_atomic_no_partial_file_visible(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=100_000_000)
    await cache.start()
    big = entry(2_000_000, b"z")
    seen: list[Entry | None] = []

    async def reader() -> None:  # reads while the write goes on, until the entry is there
        for _ in range(5000):
            seen.append(await cache.get("t/u/l.png"))
            if seen[-1] is not None:
                return
            await asyncio.sleep(0)

    await asyncio.gather(cache.put("t/u/l.png", big), reader())
    # A reader sees the entry whole or not at all: no torn file was ever found (and dropped).
    assert cache.dropped_damaged == 0
    assert seen[-1] == big and all(got is None for got in seen[:-1])
    assert await cache.get("t/u/l.png") == big
    assert not list(tmp_path.rglob("*.tmp"))


async def test_eviction_keeps_under_budget_and_drops_oldest(tmp_path: Path) -> None:
    budget = 20 * (HEADER_SIZE + len("t/u10/m.jpeg") + 1000)
    cache = DiskCache(tmp_path, max_bytes=budget * 8)  # per-entry cap is budget/8 of max
    cache.max_bytes = budget
    await cache.start()
    for i in range(40):
        assert await cache.put(f"t/u{i}/m.jpeg", entry(1000, bytes([i])))
        path = cache.path_for(f"t/u{i}/m.jpeg")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk <= budget
    assert cache.approximate_bytes == on_disk
    assert await cache.get("t/u39/m.jpeg") is not None
    assert await cache.get("t/u0/m.jpeg") is None


async def test_start_evicts_when_budget_shrank(tmp_path: Path) -> None:
    big = DiskCache(tmp_path, max_bytes=10_000_000)
    await big.start()
    for i in range(10):
        await big.put(f"t/u{i}/s.webp", entry(10_000))
    small = DiskCache(tmp_path, max_bytes=50_000)
    await small.start()
    assert small.approximate_bytes <= 50_000
    on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == small.approximate_bytes


async def test_stale_temp_files_are_cleaned(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=1_000_000)
    stale = tmp_path / "ab" / "cd" / ".m.jpeg.dead.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(MAGIC + b"half")
    os.utime(stale, (1_000_000, 1_000_000))
    await cache.start()
    assert not stale.exists()


async def test_discard_group(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=1_000_000)
    await cache.start()
    for variant in ("s.jpeg", "m.webp"):
        await cache.put(f"t/a/{variant}", entry(10))
        await cache.put(f"t/b/{variant}", entry(10))
    await cache.discard_group("t/a")
    assert await cache.get("t/a/s.jpeg") is None
    assert await cache.get("t/b/s.jpeg") is not None


async def test_disabled_with_zero_budget(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "off", max_bytes=0)
    await cache.start()
    assert not await cache.put("t/a/s.jpeg", entry(10))
    assert await cache.get("t/a/s.jpeg") is None
    assert not (tmp_path / "off").exists()


def test_bad_keys_are_refused(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=1000)
    for key in ("nogroup", "t/u/", "/x", "t/u/.hidden"):
        with pytest.raises(ValueError):
            cache.path_for(key)


def test_encoded_entry_layout() -> None:
    e = entry(7)
    blob = encode_entry(e, "t/u/m.webp.e5")
    assert blob.startswith(MAGIC) and len(blob) == HEADER_SIZE + len("t/u/m.webp.e5") + 7
    assert decode_entry(blob) == e


def test_provisional_flag_round_trips() -> None:
    provisional = Entry.of(b"fast bytes", final=False)
    assert decode_entry(encode_entry(provisional, "t/u/m.webp")) == provisional
    assert decode_entry(encode_entry(Entry.of(b"final"), "t/u/m.webp")).final is True  # type: ignore[union-attr]


def test_files_of_the_previous_format_still_read_as_final() -> None:
    e = entry(9)
    v1 = b"IMGC1\n" + struct.pack("<Q16s", len(e.data), bytes.fromhex(e.digest)) + e.data
    assert decode_entry(v1) == e
    assert decode_entry(v1[:-1]) is None


async def test_restart_finds_its_provisional_entries(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, max_bytes=10_000_000)
    await cache.start()
    await cache.put("t/a/m.webp.e5", Entry.of(b"a", final=False))
    await cache.put("t/b/m.webp.e5", Entry.of(b"b"))
    await cache.put("t/c/l.avif.e5", Entry.of(b"c", final=False))
    reopened = DiskCache(tmp_path, max_bytes=10_000_000)
    await reopened.start()
    assert sorted(await reopened.provisional_keys(10)) == ["t/a/m.webp.e5", "t/c/l.avif.e5"]
    assert len(await reopened.provisional_keys(1)) == 1
    await reopened.put("t/a/m.webp.e5", Entry.of(b"a final"))  # refined: no longer listed
    assert await reopened.provisional_keys(10) == ["t/c/l.avif.e5"]
