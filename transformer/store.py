"""Where originals live: the interface the CDN and the API share, and its local-directory form.

An original is addressed by ``(team_hash, uid)`` only, so the CDN hot path needs no database:
the URL ``/{team_hash}/{uid}.{ext}`` names the object. Deleting the object is what makes the CDN
answer 404. The S3 implementation lives in ``transformer.s3store`` and passes the same tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import aiofiles
import aiofiles.os

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class OriginalNotFound(KeyError):
    """No original under that key (never stored, or deleted)."""


class StoreUnavailable(RuntimeError):
    """The backing store could not be reached; callers answer 503 with Retry-After."""


@dataclass(frozen=True, slots=True)
class StoredOriginal:
    size: int
    etag: str


def object_key(team_hash: str, uid: str) -> str:
    """The store key of an original; refuses anything that could escape the namespace."""
    if not _NAME.match(team_hash) or not _NAME.match(uid):
        raise OriginalNotFound(f"{team_hash}/{uid}")
    return f"{team_hash}/{uid}"


@runtime_checkable
class OriginalsStore(Protocol):
    async def put(self, team_hash: str, uid: str, data: bytes | AsyncIterable[bytes]) -> int:
        """Store an original, replacing any previous one; returns the byte count."""

    async def get(self, team_hash: str, uid: str) -> bytes:
        """The whole original; raises OriginalNotFound or StoreUnavailable."""

    def stream(self, team_hash: str, uid: str) -> AsyncGenerator[bytes, None]:
        """The original in chunks, for serving it unchanged without holding it in memory."""

    async def head(self, team_hash: str, uid: str) -> StoredOriginal | None:
        """Size and etag, or None when absent: the cheap check behind revalidation."""

    async def delete(self, team_hash: str, uid: str) -> bool:
        """Remove the original; True if something was removed."""

    async def close(self) -> None: ...


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

    async def close(self) -> None:
        return None


async def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await aiofiles.os.remove(path)


def open_store(url: str, *, s3_endpoint_url: str | None = None) -> OriginalsStore:
    """Pick the store for ``IMGPRO_STORAGE_URL``: ``file:///path`` (default) or ``s3://bucket/prefix``."""
    if url.startswith("s3://"):
        from transformer.s3store import S3OriginalsStore

        return S3OriginalsStore.from_url(url, endpoint_url=s3_endpoint_url)
    path = url.removeprefix("file://")
    return LocalOriginalsStore(path)
