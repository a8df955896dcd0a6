"""Start-up check of the originals store: the S3 bucket must exist before traffic arrives.

Each process runs it in its lifespan (several workers or nodes may race to create the bucket;
the loser's "already exists" is fine). A missing bucket that we may not create stops the
process with a clear message, since every upload would fail. An unreachable endpoint does
not: the node starts, keeps serving what its caches hold, and answers 503 + Retry-After
for the rest until storage is back — a storage blip must not turn into a crash loop.
"""

from __future__ import annotations

import logging

from api.settings import Settings
from transformer.originals import OriginalsStore, StoreUnavailable
from transformer.renditions import S3RenditionStore

log = logging.getLogger("imgpro.store")


async def prepare_originals_store(store: OriginalsStore, settings: Settings) -> None:
    try:
        await store.prepare(create_missing=settings.create_bucket)
    except StoreUnavailable as exc:
        log.warning("originals store not reachable at start-up (%s); answering 503 until it is",
                    exc)


async def prepare_rendition_store(store: S3RenditionStore, settings: Settings) -> None:
    """The same check for the shared rendition store; while it is unreachable the node runs
    without it (its circuit breaker takes it back when it answers)."""
    try:
        await store.prepare(create_missing=settings.create_bucket)
    except StoreUnavailable as exc:
        log.warning("rendition store not reachable at start-up (%s); transforming locally "
                    "until it is", exc)
