"""What every originals store offers and the errors it raises: the CDN's and the API's contract.

An original is addressed by ``(team_hash, uid)`` only, so the CDN hot path needs no database:
the URL ``/{team_hash}/{uid}.{ext}`` names the object. Deleting the object is what makes the CDN
answer 404. ``tests/transformer/originals`` runs one suite over every implementation.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class OriginalNotFound(KeyError):
    """No original under that key (never stored, or deleted)."""


class StoreUnavailable(RuntimeError):
    """The backing store could not be reached; callers answer 503 with Retry-After."""


class BucketMissing(RuntimeError):
    """The configured bucket does not exist and creating it was not allowed: a deployment
    error, so the process stops at start-up with this message instead of answering 503s."""


@dataclass(frozen=True, slots=True)
class StoredOriginal:
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class ListedOriginal:
    """One original of a team's listing: its uid and when it was stored (Unix seconds)."""

    uid: str
    modified: float


def valid_name(name: str) -> bool:
    """A team hash or uid the store can hold (what ``object_key`` accepts)."""
    return bool(_NAME.match(name))


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

    def list_teams(self) -> AsyncIterator[str]:
        """Every team hash with at least one original, in byte order."""

    def list_originals(self, team_hash: str) -> AsyncIterator[ListedOriginal]:
        """Every original of one team, by uid in byte order: what the reconciler
        (``api.lifecycle.reconcile``) merges with the database's rows."""

    async def prepare(self, *, create_missing: bool) -> None:
        """Start-up check that the store can be used, creating its container when allowed.

        Raises BucketMissing (stop the process) or StoreUnavailable (start anyway and answer
        503 until the store is back)."""

    async def close(self) -> None: ...
