"""The purge every delete path calls: this process's cached renditions, then the cluster's.

``delete_media`` (single, batch, namespace) and the retention sweeper call ``ctx.purge``
after removing an original. With a shared rendition store that purge also deletes the image's
objects there; if the store cannot be reached it raises ``StoreUnavailable`` like the
originals store does, so the row stays "original not removed" and the sweeper redoes the
whole removal later (the original's delete is idempotent). The delete paths need no change
for it: the hook is composed here and handed to the API through ``ApiContext.purge``.
"""

from __future__ import annotations

from api.context import Purge
from transformer.renditions import S3RenditionStore


def purge_renditions(local: Purge | None, store: S3RenditionStore | None) -> Purge | None:
    """``local`` (the CDN of this process, if any) and then the shared store, if any."""
    if store is None:
        return local

    async def purge(team_hash: str, media_id: str) -> None:
        if local is not None:
            await local(team_hash, media_id)
        await store.purge_image(team_hash, media_id)

    return purge
