"""Deleting media: one path for DELETE, batch delete and the retention sweeper.

1. One transaction soft-deletes the matching live rows (each row is handed to exactly one
   caller, even with several processes sweeping) and gives their bytes back to the teams.
2. Then each original is removed from the store and the CDN's cached renditions purged, so
   the CDN stops serving it; the row is marked ``original_removed``.
If a process dies between 1 and 2, the sweeper finds rows deleted but not removed and
finishes the job.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa

from api.context import ApiContext
from api.db import DatabaseUnavailable
from api.db.counters import free_storage
from api.db.media import DeletedMedia, mark_deleted, mark_originals_removed
from transformer.originals import StoreUnavailable

log = logging.getLogger("imgpro.api")
PARALLEL_REMOVALS = 8


async def delete_media(ctx: ApiContext, condition: sa.ColumnElement[bool]) -> int:
    """Delete the live media matching ``condition``; returns how many this call deleted."""
    async with ctx.db.write() as conn:
        deleted = await mark_deleted(conn, condition, ctx.now())
        freed: dict[int, int] = defaultdict(int)
        for item in deleted:
            freed[item.team_id] += item.filesize
        for team_id, size in freed.items():
            await free_storage(conn, team_id, size)
    await remove_originals(ctx, deleted)
    return len(deleted)


async def remove_originals(ctx: ApiContext, deleted: Sequence[DeletedMedia]) -> None:
    """Remove originals and purge renditions; rows whose removal failed are retried later."""
    if not deleted:
        return
    gate = asyncio.Semaphore(PARALLEL_REMOVALS)

    async def remove(item: DeletedMedia) -> str | None:
        async with gate:
            try:
                await ctx.store.delete(item.team_hash, item.id)
                if ctx.purge is not None:
                    await ctx.purge(item.team_hash, item.id)
            except StoreUnavailable as exc:  # expected while storage is down: no traceback
                log.warning("original %s/%s not removed yet, the sweeper retries: %s",
                            item.team_hash, item.id, exc)
                return None
            except Exception:
                log.exception("could not remove original %s/%s", item.team_hash, item.id)
                return None
            return item.id

    removed = [i for i in await asyncio.gather(*(remove(d) for d in deleted)) if i is not None]
    try:
        async with ctx.db.write() as conn:
            await mark_originals_removed(conn, removed)
    except DatabaseUnavailable as exc:
        # The media are deleted (committed above); only the note that their originals are
        # gone is missing, and the sweeper redoes removals it cannot see noted. The caller's
        # deletion succeeded: do not turn it into a 503.
        log.warning("%d removed originals not noted yet, the sweeper redoes them: %s",
                    len(removed), exc)
