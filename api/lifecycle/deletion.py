"""Deleting media: one path for DELETE, batch delete, namespace delete and the retention sweeper.

1. One transaction soft-deletes the matching live rows (each row is handed to exactly one
   caller, even with several processes sweeping) and gives their bytes and namespace counts
   back to the team.
2. Then each original is removed from the store and the CDN's cached renditions purged, so
   the CDN stops serving it; the row is marked ``original_removed`` (and its tags dropped).

A bounded delete (ids of one batch, one sweep's expired rows) holds a lease on its rows' step 2
and does it before answering. A namespace delete has no bound (a team's 50,000 or 5,000,000),
so it answers after step 1 with the exact count, and wakes the sweeper, which does step 2 in
leased batches of ``REMOVAL_BATCH`` (``sweep_removals``). From the answer on, the media are
gone from every API read and from the counters; the CDN stops serving each original as its
batch is removed (seconds to minutes, in the order they were deleted). A process that dies
during step 2 leaves leases that pass after ``REMOVAL_LEASE_SECONDS``; any sweeper then
finishes the job, so nothing is lost or left orphaned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import sqlalchemy as sa

from api.context import ApiContext
from api.db import DatabaseUnavailable
from api.db.media import (
    DeletedMedia,
    by_team_namespace,
    claim_removals,
    mark_deleted,
    mark_deleted_in_bulk,
    mark_originals_removed,
)
from transformer.originals import StoreUnavailable

log = logging.getLogger("imgpro.api")
PARALLEL_REMOVALS = 8
REMOVAL_BATCH = 500
"""Rows claimed per statement by the sweeper: bounded parameters per statement (500 ids in
the statement that notes them removed), and a batch takes seconds (8 removals in parallel),
far inside its lease."""


async def delete_media(ctx: ApiContext, condition: sa.ColumnElement[bool]) -> int:
    """Delete the live media matching ``condition`` (a bounded set) and remove their originals;
    returns how many this call deleted."""
    async with ctx.db.write() as conn:
        deleted = await mark_deleted(conn, condition, ctx.now())
    await remove_originals(ctx, deleted)
    return len(deleted)


async def delete_namespace(ctx: ApiContext, team_id: int, namespace: str) -> int:
    """Delete every live media of the team's ``namespace`` in one transaction; the originals
    are removed by the sweeper, woken now. Returns the exact count."""
    async with ctx.db.write() as conn:
        count = await mark_deleted_in_bulk(conn, team_id, by_team_namespace(team_id, namespace),
                                           ctx.now())
    if count:
        ctx.sweep_now.set()
    return count


async def sweep_removals(ctx: ApiContext, *, max_batches: int | None = None) -> int:
    """Remove originals of deleted rows nobody holds, batch by batch, until none is left (or
    ``max_batches``); returns how many were claimed."""
    claimed = batches = 0
    while max_batches is None or batches < max_batches:
        async with ctx.db.write() as conn:
            batch = await claim_removals(conn, ctx.now(), REMOVAL_BATCH)
        if not batch:
            break
        await remove_originals(ctx, batch)
        claimed += len(batch)
        batches += 1
    return claimed


async def remove_originals(ctx: ApiContext, deleted: Sequence[DeletedMedia]) -> None:
    """Remove originals and purge renditions; rows whose removal failed are retried later."""
    if not deleted:
        return
    gate = asyncio.Semaphore(PARALLEL_REMOVALS)

    async def remove(item: DeletedMedia) -> DeletedMedia | None:
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
            return item

    removed = [i for i in await asyncio.gather(*(remove(d) for d in deleted)) if i is not None]
    try:
        async with ctx.db.write() as conn:
            await mark_originals_removed(conn, removed)
    except DatabaseUnavailable as exc:
        # The media are deleted (committed above); only the note that their originals are
        # gone is missing, and the sweeper redoes removals it cannot see noted once their
        # lease passes. The caller's deletion succeeded: do not turn it into a 503.
        log.warning("%d removed originals not noted yet, the sweeper redoes them: %s",
                    len(removed), exc)
