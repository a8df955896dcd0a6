"""The retention sweeper: deletes expired media (anonymous and unverified after 30 days, ttl)
and pending keys nobody activated in time.

Every API process runs one. That is safe because a row is deleted by a conditional UPDATE
that only one process can win (api/deletion.py); the others find nothing to do. It also
removes the originals of namespace deletes and of deletions a crashed process left half done
(leased batches, ``api.lifecycle.deletion.sweep_removals``), and drops expired rate-limit
windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.context import ApiContext
from api.db import DatabaseUnavailable
from api.db.accounts import drop_expired_pending_keys
from api.db.counters import drop_expired_windows
from api.db.media import expired
from api.lifecycle.deletion import delete_media, sweep_namespace_deletions, sweep_removals
from api.rules.plans import PENDING_KEY_SECONDS

log = logging.getLogger("imgpro.api")
BATCH = 200


async def sweep_once(ctx: ApiContext) -> int:
    """One pass; returns how many media it deleted."""
    total = 0
    while True:
        count = await delete_media(ctx, expired(ctx.now(), BATCH))
        total += count
        if count < BATCH:
            break
    await sweep_namespace_deletions(ctx)
    await sweep_removals(ctx)
    async with ctx.db.write() as conn:
        await drop_expired_windows(conn, ctx.now())
        await drop_expired_pending_keys(conn, ctx.now() - PENDING_KEY_SECONDS)
    return total


async def run_sweeper(ctx: ApiContext, interval: float) -> None:
    """Sweep every ``interval`` seconds, or at once when a namespace delete wakes it
    (``ctx.sweep_now``), until cancelled; errors are logged, never fatal."""
    while True:
        ctx.sweep_now.clear()
        try:
            deleted = await sweep_once(ctx)
            if deleted:
                log.info("retention: deleted %d expired media", deleted)
        except asyncio.CancelledError:
            raise
        except DatabaseUnavailable as exc:  # an outage, not a bug: no traceback
            log.warning("retention sweep skipped, retrying in %.0f s: %s", interval, exc)
        except Exception:
            log.exception("retention sweep failed; retrying in %.0f s", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ctx.sweep_now.wait(), interval)
