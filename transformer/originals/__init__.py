"""Where originals live: the store protocol, the local directory (default) and S3.

    open_store(url)          file:///path -> LocalOriginalsStore
                             s3://bucket/prefix -> S3OriginalsStore
    OriginalsStore           put / get / stream / head / delete / list_teams / list_originals /
                             prepare / close
    OriginalNotFound         404 for the CDN and the API
    StoreUnavailable         503 + Retry-After
    BucketMissing            a deployment error: stop at start-up
"""

from __future__ import annotations

from transformer.originals.local import LocalOriginalsStore
from transformer.originals.protocol import (
    BucketMissing,
    ListedOriginal,
    OriginalNotFound,
    OriginalsStore,
    StoredOriginal,
    StoreUnavailable,
    object_key,
    valid_name,
)
from transformer.originals.s3 import S3OriginalsStore

__all__ = [
    "BucketMissing",
    "ListedOriginal",
    "LocalOriginalsStore",
    "OriginalNotFound",
    "OriginalsStore",
    "S3OriginalsStore",
    "StoreUnavailable",
    "StoredOriginal",
    "object_key",
    "open_store",
    "valid_name",
]


def open_store(url: str, *, s3_endpoint_url: str | None = None) -> OriginalsStore:
    """The store for ``IMGPRO_STORAGE_URL``: ``file:///path`` (default) or ``s3://bucket/prefix``."""
    if url.startswith("s3://"):
        return S3OriginalsStore.from_url(url, endpoint_url=s3_endpoint_url)
    return LocalOriginalsStore(url.removeprefix("file://"))
