"""What every cache layer stores: the bytes and a digest that doubles as the strong ETag."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def digest_of(data: bytes) -> str:
    """128-bit BLAKE2b: fast enough to re-check on every disk read, wide enough for ETags."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    data: bytes
    digest: str

    @classmethod
    def of(cls, data: bytes) -> Entry:
        return cls(data, digest_of(data))

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'
