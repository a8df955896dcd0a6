"""Originals as files under one directory: the embedded default (``file://<data-dir>/originals``)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path

import aiofiles
import aiofiles.os

from transformer.originals.protocol import OriginalNotFound, StoredOriginal, object_key


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
        except BaseException:
            await _unlink_quietly(tmp)
            raise
        return written

    async def get(self, team_hash: str, uid: str) -> bytes:
        try:
            async with aiofiles.open(self._path(team_hash, uid), "rb") as src:
                return await src.read()
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

    async def prepare(self, *, create_missing: bool) -> None:
        return None  # the directory was created when the store was opened

    async def close(self) -> None:
        return None


async def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await aiofiles.os.remove(path)
