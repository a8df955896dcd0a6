from __future__ import annotations

from cache import Entry, MemoryCache
from cache.memory import ENTRY_OVERHEAD


def entry(n: int, fill: bytes = b"x") -> Entry:
    return Entry.of(fill * n)


def test_evicts_least_recently_used_by_bytes() -> None:
    cache = MemoryCache(max_bytes=8 * (1000 + ENTRY_OVERHEAD))
    for i in range(8):
        assert cache.put(f"g/{i}", entry(1000))
    assert cache.get("g/0") is not None  # 0 is now most recent
    cache.put("g/8", entry(1000))
    assert cache.get("g/1") is None
    assert cache.get("g/0") is not None
    assert cache.current_bytes <= cache.max_bytes


def test_budget_holds_under_many_puts() -> None:
    cache = MemoryCache(max_bytes=50_000)
    for i in range(1000):
        cache.put(f"g{i % 37}/{i}", entry(100 + (i * 37) % 5000))
        assert cache.current_bytes <= 50_000


def test_refuses_an_entry_bigger_than_its_share() -> None:
    cache = MemoryCache(max_bytes=80_000)
    cache.put("small/a", entry(100))
    assert not cache.put("big/a", entry(20_000))
    assert cache.get("small/a") is not None


def test_zero_budget_disables() -> None:
    cache = MemoryCache(max_bytes=0)
    assert not cache.enabled
    assert not cache.put("g/a", entry(10))
    assert cache.get("g/a") is None


def test_discard_prefix_drops_one_group_only() -> None:
    cache = MemoryCache(max_bytes=1_000_000)
    for variant in ("s.jpeg", "m.webp", "l.avif"):
        cache.put(f"t/abc/{variant}", entry(10))
        cache.put(f"t/abcd/{variant}", entry(10))
    assert cache.discard_prefix("t/abc/") == 3
    assert cache.get("t/abc/s.jpeg") is None
    assert cache.get("t/abcd/s.jpeg") is not None
    assert len(cache) == 3
