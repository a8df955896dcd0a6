"""Originals as files under one directory: the embedded default (``file://<data-dir>/originals``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from pathlib import Path

import aiofiles
import aiofiles.os

from transformer.originals.protocol import (
    ListedOriginal,
    OriginalNotFound,
    StoredOriginal,
    StoreUnavailable,
    object_key,
    valid_name,
)

_UNAVAILABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
"""Write errors that mean "the disk cannot take it now" (503, retry), not a bug."""
STALE_TEMP_SECONDS = 3600.0
"""A temporary file of ``put`` this old belongs to a writer that died (``kill -9``): the
listing removes it. A live write renames its file long before."""


class LocalOriginalsStore:
    """Originals as files under one directory, written atomically (temp file + rename)."""

    chunk_size = 256 * 1024

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, team_hash: str, uid: str) -> Path:
        return self.root / object_key(team_hash, uid)

    async def put(self, team_hash: str, uid: str, data: bytes | AsyncIterable[bytes]) -> int:
        path = self._path(team_hash, uid)
        await aiofiles.os.makedirs(path.parent, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        written = 0
        try:
            async with aiofiles.open(tmp, "wb") as out:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    written = await out.write(data)
                else:
                    async for chunk in data:
                        written += await out.write(chunk)
            await aiofiles.os.replace(tmp, path)
        except OSError as exc:
            await _unlink_quietly(tmp)
            if exc.errno in _UNAVAILABLE:
                raise StoreUnavailable(f"cannot write {team_hash}/{uid}: {exc.strerror}") from exc
            raise
        except BaseException:
            await _unlink_quietly(tmp)
            raise
        return written

    async def get(self, team_hash: str, uid: str) -> bytes:
        # One thread hop for open+read+close instead of aiofiles' three: every cold miss
        # reads its original here, and each hop wakes a thread and waits for the event loop.
        try:
            return await asyncio.to_thread(self._path(team_hash, uid).read_bytes)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise OriginalNotFound(f"{team_hash}/{uid}") from exc

    async def stream(self, team_hash: str, uid: str) -> AsyncGenerator[bytes, None]:
        try:
            src = await aiofiles.open(self._path(team_hash, uid), "rb")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise OriginalNotFound(f"{team_hash}/{uid}") from exc
        try:
            while chunk := await src.read(self.chunk_size):
                yield chunk
        finally:
            await src.close()

    async def head(self, team_hash: str, uid: str) -> StoredOriginal | None:
        try:
            st = await aiofiles.os.stat(self._path(team_hash, uid))
        except (FileNotFoundError, NotADirectoryError, OriginalNotFound):
            return None
        return StoredOriginal(size=st.st_size, etag=f"{st.st_mtime_ns:x}-{st.st_size:x}")

    async def delete(self, team_hash: str, uid: str) -> bool:
        try:
            await aiofiles.os.remove(self._path(team_hash, uid))
        except (FileNotFoundError, NotADirectoryError, OriginalNotFound):
            return False
        return True

    async def list_teams(self) -> AsyncIterator[str]:
        for name in await asyncio.to_thread(self._team_names):
            yield name

    async def list_originals(self, team_hash: str) -> AsyncIterator[ListedOriginal]:
        if not valid_name(team_hash):
            return
        for listed in await asyncio.to_thread(self._team_files, self.root / team_hash):
            yield listed

    def _team_names(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if valid_name(n) and (self.root / n).is_dir())

    def _team_files(self, folder: Path) -> list[ListedOriginal]:
        found = []
        now = time.time()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if valid_name(entry.name) and entry.is_file(follow_symlinks=False):
                found.append(ListedOriginal(entry.name, st.st_mtime))
            elif entry.name.endswith(".tmp") and now - st.st_mtime > STALE_TEMP_SECONDS:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        return sorted(found, key=lambda listed: listed.uid.encode())

    async def prepare(self, *, create_missing: bool) -> None:
        return None  # the directory was created when the store was opened

    async def close(self) -> None:
        return None


async def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await aiofiles.os.remove(path)
