"""What every cache layer stores: the bytes, a digest that doubles as the strong ETag, and
whether the rendition is final or a provisional fast encode still to be refined."""

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
    final: bool = True
    """False for a provisional rendition (a fast encode served with a short max-age) that a
    background re-encode will replace; its bytes differ, so its ETag does too."""

    @classmethod
    def of(cls, data: bytes, *, final: bool = True) -> Entry:
        return cls(data, digest_of(data), final)

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'
