"""Byte-bounded in-memory LRU of rendition entries.

Bounded by the bytes it holds, not by entry count, because renditions range from 5 KB
thumbnails to multi-megabyte originals: a count bound would be either useless or unsafe.
Only the event-loop thread touches it, so it needs no lock.
"""

from __future__ import annotations

from cachetools import LRUCache

from cache.entry import Entry

ENTRY_OVERHEAD = 200
"""Approximate bytes of Python object overhead per entry (key, Entry, LRU bookkeeping)."""


def _cost(entry: Entry) -> int:
    return len(entry.data) + ENTRY_OVERHEAD


class MemoryCache:
    def __init__(self, max_bytes: int, *, max_entry_fraction: float = 0.125) -> None:
        self.max_bytes = max_bytes
        # One huge entry must not flush the whole working set of small ones.
        self.max_entry_bytes = int(max_bytes * max_entry_fraction)
        self._lru: LRUCache[str, Entry] | None = (
            LRUCache(maxsize=max_bytes, getsizeof=_cost) if max_bytes > 0 else None
        )

    @property
    def enabled(self) -> bool:
        return self._lru is not None

    @property
    def current_bytes(self) -> int:
        return int(self._lru.currsize) if self._lru is not None else 0

    def __len__(self) -> int:
        return len(self._lru) if self._lru is not None else 0

    def get(self, key: str) -> Entry | None:
        if self._lru is None:
            return None
        return self._lru.get(key)

    def put(self, key: str, entry: Entry) -> bool:
        """Store unless disabled or too big for the budget; returns whether it was kept."""
        if self._lru is None or _cost(entry) > self.max_entry_bytes:
            return False
        self._lru[key] = entry
        return True

    def discard_prefix(self, prefix: str) -> int:
        """Drop every key under a prefix (all renditions of one image): a scan; purges are rare."""
        if self._lru is None:
            return 0
        doomed = [key for key in self._lru if key.startswith(prefix)]
        for key in doomed:
            self._lru.pop(key, None)
        return len(doomed)
