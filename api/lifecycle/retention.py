"""The retention sweeper: deletes expired media (anonymous and unverified after 30 days, ttl)
and pending keys nobody activated in time.

Every API process runs one. That is safe because a row is deleted by a conditional UPDATE
that only one process can win (api/deletion.py); the others find nothing to do. It also
finishes deletions a crashed process left half done, and drops expired rate-limit windows.
"""

from __future__ import annotations

import asyncio
import logging

from api.context import ApiContext
from api.db.accounts import drop_expired_pending_keys
from api.db.counters import drop_expired_windows
from api.db.media import expired, originals_to_remove
from api.lifecycle.deletion import delete_media, remove_originals
from api.rules.plans import PENDING_KEY_SECONDS

log = logging.getLogger("imgpro.api")
BATCH = 200
STRANDED_AFTER = 300
"""A deletion older than this whose original is still there was interrupted: redo it."""


async def sweep_once(ctx: ApiContext) -> int:
    """One pass; returns how many media it deleted."""
    total = 0
    while True:
        count = await delete_media(ctx, expired(ctx.now(), BATCH))
        total += count
        if count < BATCH:
            break
    async with ctx.db.read() as conn:
        stranded = await originals_to_remove(conn, ctx.now() - STRANDED_AFTER, BATCH)
    await remove_originals(ctx, stranded)
    async with ctx.db.write() as conn:
        await drop_expired_windows(conn, ctx.now())
        await drop_expired_pending_keys(conn, ctx.now() - PENDING_KEY_SECONDS)
    return total


async def run_sweeper(ctx: ApiContext, interval: float) -> None:
    """Sweep every ``interval`` seconds until cancelled; errors are logged, never fatal."""
    while True:
        try:
            deleted = await sweep_once(ctx)
            if deleted:
                log.info("retention: deleted %d expired media", deleted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)
