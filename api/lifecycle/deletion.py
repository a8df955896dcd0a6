"""Deleting media: one path for DELETE, batch delete, namespace delete and the retention sweeper.

1. One transaction soft-deletes the matching live rows (each row is handed to exactly one
   caller, even with several processes sweeping) and gives their bytes and namespace counts
   back to the team.
2. Then each original is removed from the store and the CDN's cached renditions purged, so
   the CDN stops serving it; the row is marked ``original_removed`` (and its tags dropped).

A bounded delete (ids of one batch, one sweep's expired rows) holds a lease on its rows' step 2
and does it before answering. A namespace delete has no bound (a team's 50,000 or 5,000,000):
it records the deletion (every row that exists now), does step 1 in committed chunks of
``NAMESPACE_CHUNK`` rows for up to ``namespace_delete_seconds``, and answers the exact count,
counting what it had no time to mark; the sweepers, woken, mark the rest (chunk by chunk,
``sweep_namespace_deletions``) and do step 2 in leased batches of ``REMOVAL_BATCH``
(``sweep_removals``). Every chunk's counters commit with it. The media are gone from the API's
reads as their chunk commits (all of them before the answer, unless the budget ran out), and
the CDN stops serving each original as its batch is removed. A process that dies leaves a
deletion or leases that pass (``CLAIM_SECONDS``, ``REMOVAL_LEASE_SECONDS``); any sweeper then
finishes the job, and a client's retry of the delete continues it: nothing is lost or left
orphaned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import sqlalchemy as sa

from api.context import ApiContext
from api.db import DatabaseUnavailable
from api.db.media import (
    NAMESPACE_CHUNK,
    DeletedMedia,
    claim_more,
    claim_namespace_deletion,
    claim_removals,
    end_namespace_deletion,
    mark_deleted,
    mark_namespace_chunk,
    mark_originals_removed,
    namespace_rows_left,
    start_namespace_deletion,
)
from transformer.originals import StoreUnavailable

log = logging.getLogger("imgpro.api")
PARALLEL_REMOVALS = 8
CLAIM_SECONDS = 60
"""How long a worker holds a namespace deletion past its own budget: a chunk takes a fraction
of a second, so a deletion whose worker died is taken over within a minute."""
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
    """Delete every live media of the team's ``namespace`` that exists now; returns the exact
    count. Rows are marked in committed chunks for up to ``namespace_delete_seconds``; what is
    left then is counted (it is part of the answer) and handed to the sweepers, which finish
    it within seconds (they are woken now). Originals are removed by the sweepers."""
    budget = ctx.settings.namespace_delete_seconds
    deadline = time.monotonic() + budget
    async with ctx.db.write() as conn:
        up_to = await start_namespace_deletion(conn, team_id, namespace,
                                               ctx.now() + int(budget) + CLAIM_SECONDS)
    deleted, done = 0, False
    try:
        while not done and time.monotonic() < deadline:
            count, done = await _mark_chunk(ctx, team_id, namespace, up_to, None)
            deleted += count
        if not done:
            async with ctx.db.write() as conn:
                deleted += await namespace_rows_left(conn, team_id, namespace, up_to)
                await end_namespace_deletion(conn, team_id, namespace, done=False)
    finally:
        ctx.sweep_now.set()  # removals to do, and the marking if this request left some
    return deleted


async def sweep_namespace_deletions(ctx: ApiContext) -> int:
    """Finish namespace deletions nobody holds (answered requests, dead workers), chunk by
    chunk; returns how many rows were marked."""
    marked = 0
    while True:
        async with ctx.db.write() as conn:
            job = await claim_namespace_deletion(conn, ctx.now(), ctx.now() + CLAIM_SECONDS)
        if job is None:
            return marked
        team_id, namespace, up_to = job
        done = False
        while not done:
            count, done = await _mark_chunk(ctx, team_id, namespace, up_to,
                                            ctx.now() + CLAIM_SECONDS)
            marked += count


async def _mark_chunk(ctx: ApiContext, team_id: int, namespace: str, up_to: int,
                      claim_until: int | None) -> tuple[int, bool]:
    """One chunk of a deletion in its own transaction: (rows marked, deletion done). The last
    chunk forgets the deletion; any other extends the claim when ``claim_until`` is given."""
    async with ctx.db.write() as conn:
        count = await mark_namespace_chunk(conn, team_id, namespace, up_to, ctx.now())
        done = count < NAMESPACE_CHUNK
        if done:
            await end_namespace_deletion(conn, team_id, namespace, done=True)
        elif claim_until is not None:
            await claim_more(conn, team_id, namespace, claim_until)
    return count, done


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
