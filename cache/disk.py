"""Size-bounded disk cache of rendition entries under the data dir; survives restarts.

Cache keys have the form ``<group>/<variant>`` (group = one image, e.g. ``team/uid``), and a
group's variants share one directory, so purging an image is one ``rmtree``.

File format: ``MAGIC | flags (u8) | key length (u16 LE) | data length (u64 LE) | blake2b-128
digest | key | data``; flag bit 0 marks a provisional entry, and the key is kept so that a
restarted node can find its provisional entries again (``provisional_keys``). Files of the
previous format (``IMGC1``, no flags, no key) still read, as final. Writes go to a temp file
that is renamed into place, so a reader never sees a half-written entry from a live writer;
every read re-checks length and digest, so a torn file left by a crash or power loss (we do
not fsync) is dropped instead of served. Several processes may share the directory: each
keeps an approximate byte count and, when over budget, rescans the directory and evicts the
least recently used files (mtime, refreshed on hits) down to a low-water mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import struct
import time
import uuid
from pathlib import Path

import aiofiles
import aiofiles.os

from cache.entry import Entry

log = logging.getLogger(__name__)

MAGIC = b"IMGC2\n"
_HEADER = struct.Struct("<BHQ16s")
HEADER_SIZE = len(MAGIC) + _HEADER.size
"""The fixed part of a file's header; the key follows it (``blob_size``)."""
_PROVISIONAL = 1
_MAGIC_V1 = b"IMGC1\n"
_HEADER_V1 = struct.Struct("<Q16s")
LOW_WATER = 0.9
TOUCH_INTERVAL = 300.0
"""Refresh a hit file's mtime (its LRU age) at most this often, to keep hits cheap."""
STALE_TEMP_SECONDS = 3600.0


def split_key(key: str) -> tuple[str, str]:
    group, sep, variant = key.rpartition("/")
    if not sep or not group or not variant or variant.startswith("."):
        raise ValueError(f"cache key must be '<group>/<variant>': {key!r}")
    return group, variant


def blob_size(key: str, entry: Entry) -> int:
    """Bytes the entry takes on disk under ``key``."""
    return HEADER_SIZE + len(key.encode()) + len(entry.data)


def encode_entry(entry: Entry, key: str = "") -> bytes:
    raw_key = key.encode()
    flags = 0 if entry.final else _PROVISIONAL
    return (MAGIC + _HEADER.pack(flags, len(raw_key), len(entry.data), bytes.fromhex(entry.digest))
            + raw_key + entry.data)


def decode_entry(blob: bytes) -> Entry | None:
    """The entry if the blob is whole and its digest matches, else None."""
    if blob.startswith(_MAGIC_V1) and len(blob) >= len(_MAGIC_V1) + _HEADER_V1.size:
        length, raw_digest = _HEADER_V1.unpack_from(blob, len(_MAGIC_V1))
        return _checked(blob[len(_MAGIC_V1) + _HEADER_V1.size:], length, raw_digest, True)
    if len(blob) < HEADER_SIZE or not blob.startswith(MAGIC):
        return None
    flags, key_length, length, raw_digest = _HEADER.unpack_from(blob, len(MAGIC))
    return _checked(blob[HEADER_SIZE + key_length:], length, raw_digest,
                    not flags & _PROVISIONAL)


def _checked(data: bytes, length: int, raw_digest: bytes, final: bool) -> Entry | None:
    if len(data) != length:
        return None
    entry = Entry.of(data, final=final)
    return entry if entry.digest == raw_digest.hex() else None


def provisional_key(head: bytes) -> str | None:
    """The key of a file whose header (its first bytes) marks a provisional entry."""
    if len(head) < HEADER_SIZE or not head.startswith(MAGIC):
        return None
    flags, key_length, _length, _digest = _HEADER.unpack_from(head, len(MAGIC))
    if not flags & _PROVISIONAL or len(head) < HEADER_SIZE + key_length:
        return None
    return head[HEADER_SIZE:HEADER_SIZE + key_length].decode(errors="replace") or None


class DiskCache:
    def __init__(self, root: str | os.PathLike[str], max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._bytes = 0
        self._evicting = False
        self.dropped_damaged = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def approximate_bytes(self) -> int:
        return self._bytes

    async def start(self) -> None:
        """Create the directory and learn the current size (in a thread: it may be large)."""
        if not self.enabled:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._bytes = await asyncio.to_thread(self._scan_total)
        if self._bytes > self.max_bytes:
            await self._evict()

    def group_dir(self, group: str) -> Path:
        digest = hashlib.sha1(group.encode(), usedforsecurity=False).hexdigest()
        return self.root / digest[:2] / digest

    def path_for(self, key: str) -> Path:
        group, variant = split_key(key)
        return self.group_dir(group) / variant

    async def get(self, key: str) -> Entry | None:
        if not self.enabled:
            return None
        # One thread hop for open+read+verify+touch instead of aiofiles' three.
        return await asyncio.to_thread(self._read, self.path_for(key))

    def _read(self, path: Path) -> Entry | None:
        try:
            with path.open("rb") as fh:
                mtime = os.fstat(fh.fileno()).st_mtime
                blob = fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        entry = decode_entry(blob)
        if entry is None:
            self.dropped_damaged += 1
            log.warning("dropping damaged disk cache entry %s", path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        now = time.time()
        if now - mtime > TOUCH_INTERVAL:
            with contextlib.suppress(OSError):
                os.utime(path, (now, now))
        return entry

    async def put(self, key: str, entry: Entry) -> bool:
        """Write atomically; returns False if disabled, too big, or the write failed."""
        size = blob_size(key, entry)
        if not self.enabled or size > self.max_bytes // 8:
            return False
        path = self.path_for(key)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            await aiofiles.os.makedirs(path.parent, exist_ok=True)
            async with aiofiles.open(tmp, "wb") as out:
                await out.write(encode_entry(entry, key))
            await aiofiles.os.replace(tmp, path)
        except OSError as exc:  # disk full, group purged meanwhile, ...: a cache may fail quietly
            log.warning("disk cache write failed for %s: %s", key, exc)
            with contextlib.suppress(OSError):
                await aiofiles.os.remove(tmp)
            return False
        self._bytes += size
        if self._bytes > self.max_bytes:
            await self._evict()
        return True

    async def provisional_keys(self, limit: int) -> list[str]:
        """Keys of up to ``limit`` provisional entries, read from the files' headers: what a
        restarted node still has to refine."""
        if not self.enabled:
            return []
        return await asyncio.to_thread(self._provisional_keys, limit)

    def _provisional_keys(self, limit: int) -> list[str]:
        found: list[str] = []
        for _mtime, _size, path in sorted(self._files(), reverse=True):  # newest first
            if len(found) >= limit:
                break
            try:
                with path.open("rb") as fh:
                    head = fh.read(HEADER_SIZE + 1024)
            except OSError:
                continue
            key = provisional_key(head)
            if key is not None and self.path_for_or_none(key) == path:
                found.append(key)
        return found

    def path_for_or_none(self, key: str) -> Path | None:
        try:
            return self.path_for(key)
        except ValueError:
            return None

    async def discard_group(self, group: str) -> None:
        if self.enabled:
            await asyncio.to_thread(shutil.rmtree, self.group_dir(group), True)

    async def _evict(self) -> None:
        if self._evicting:
            return
        self._evicting = True
        try:
            self._bytes = await asyncio.to_thread(self._evict_sync)
        finally:
            self._evicting = False

    def _files(self) -> list[tuple[float, int, Path]]:
        found: list[tuple[float, int, Path]] = []
        now = time.time()
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if name.endswith(".tmp"):
                    if now - st.st_mtime > STALE_TEMP_SECONDS:  # left by a crashed writer
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
                    continue
                found.append((st.st_mtime, st.st_size, path))
        return found

    def _scan_total(self) -> int:
        return sum(size for _mtime, size, _path in self._files())

    def _evict_sync(self) -> int:
        files = sorted(self._files())
        total = sum(size for _mtime, size, _path in files)
        target = int(self.max_bytes * LOW_WATER)
        for _mtime, size, path in files:
            if total <= target:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size
        return total
