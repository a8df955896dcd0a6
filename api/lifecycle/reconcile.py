"""The reconciler: originals that no row owns are removed; rows whose original is missing are
reported.

An upload stores its original first and commits its row second (``api.intake.ingest``). A
worker killed between the two (``kill -9``, the OOM killer, a power cut), or a COMMIT whose
outcome is unknown, leaves an original without a row: the CDN would serve it, no quota counts
it, and nothing else would ever remove it. Writing the row first as "pending" would need a
schema change and a second commit per upload; instead, every API process runs this pass
periodically, and at most one of them per ``IMGPRO_RECONCILE_SECONDS`` window does the work
(a lease taken with the same one-statement counter as the rate limits, in ``rate_counters``;
no migration).

A pass walks the store team by team (only teams the database knows: an ``imgpro put`` into
a team of its own is left alone) and merges each team's listing, sorted by uid, with the
team's rows sorted by id, both in byte order, page by page (memory stays one page, whatever
the store holds):

- an original with no row, or whose row was deleted and its removal recorded, stored more than
  ``IMGPRO_ORPHAN_GRACE_SECONDS`` ago, is an orphan: checked against the database once more,
  then removed from the store and purged from this process's CDN caches;
- a live row created more than the grace period ago whose original is not listed is logged
  (a few ids per pass) and counted in ``imgpro_reconcile_missing_originals``: data lost in
  the store is an operator's matter (restore it from a backup), not something to paper over.

The grace period must exceed the longest time an upload can spend between storing its
original and committing its row (seconds: every statement is bounded by
``IMGPRO_DATABASE_TIMEOUT``); the default is an hour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

from prometheus_client import Counter, Gauge

from api.context import ApiContext
from api.db import DatabaseUnavailable
from api.db.counters import hit_window
from api.db.media import (
    StoredRow,
    live_rows_by_team,
    owning_rows,
    team_id_by_hash,
    team_rows,
)
from api.rules.ids import looks_like_media_id
from transformer.originals import ListedOriginal, StoreUnavailable

log = logging.getLogger("imgpro.api")

ORPHANS_REMOVED = Counter("imgpro_reconcile_orphans_removed_total",
                          "Originals without a committed row, removed by the reconciler.")
MISSING = Gauge("imgpro_reconcile_missing_originals",
                "Live media whose original the store does not hold (as of the last pass).",
                multiprocess_mode="mostrecent")
LAST_PASS = Gauge("imgpro_reconcile_last_pass_timestamp_seconds",
                  "When the last reconcile pass finished (Unix time).",
                  multiprocess_mode="mostrecent")

PAGE = 500
"""Rows read, and orphans checked and removed, per step."""
REPORTED_IDS = 20
"""Missing originals named in the log per pass (the count is always complete)."""


@dataclass
class Outcome:
    """What one pass saw and did."""

    teams: int = 0
    originals: int = 0
    orphans_removed: int = 0
    missing: int = 0
    missing_ids: list[str] = field(default_factory=list)


async def reconcile_once(ctx: ApiContext, *, grace: float,
                         now: float | None = None) -> Outcome:
    """One pass over the whole store; raises StoreUnavailable/DatabaseUnavailable."""
    cutoff = (time.time() if now is None else now) - grace
    outcome = Outcome()
    listed_teams: set[str] = set()
    async for team_hash in ctx.store.list_teams():
        listed_teams.add(team_hash)
        team_id = await ctx.db.fetch(partial(team_id_by_hash, team_hash=team_hash))
        if team_id is None:
            continue  # not one of our teams
        outcome.teams += 1
        await _team(ctx, team_hash, team_id, cutoff, outcome)
    by_team = await ctx.db.fetch(partial(live_rows_by_team, created_before=int(cutoff)))
    for team_hash, count in by_team.items():
        if team_hash not in listed_teams:  # the store holds nothing of this team
            outcome.missing += count
            log.warning("reconcile: team %s has %d media but no original in the store",
                        team_hash, count)
    if outcome.missing_ids:
        log.warning("reconcile: %d media have no original in the store, e.g. %s",
                    outcome.missing, ", ".join(outcome.missing_ids))
    MISSING.set(outcome.missing)
    LAST_PASS.set(time.time())
    return outcome


async def _team(ctx: ApiContext, team_hash: str, team_id: int, cutoff: float,
                outcome: Outcome) -> None:
    """Merge one team's listing with its rows (both by id in byte order)."""
    rows = _rows(ctx, team_id)
    listing = _media_originals(ctx.store.list_originals(team_hash))
    row = await anext(rows, None)
    item = await anext(listing, None)
    orphans: list[str] = []
    while row is not None or item is not None:
        if item is not None and (row is None or item.uid.encode() < row.id.encode()):
            outcome.originals += 1
            if item.modified < cutoff:  # no row at all
                orphans.append(item.uid)
            item = await anext(listing, None)
        elif row is not None and (item is None or row.id.encode() < item.uid.encode()):
            if row.live and row.created_at < cutoff:
                outcome.missing += 1
                if len(outcome.missing_ids) < REPORTED_IDS:
                    outcome.missing_ids.append(f"{team_hash}/{row.id}")
            row = await anext(rows, None)
        else:
            assert row is not None and item is not None
            outcome.originals += 1
            if row.removed and item.modified < cutoff:  # deleted, removal recorded, still here
                orphans.append(item.uid)
            row, item = await anext(rows, None), await anext(listing, None)
        if len(orphans) >= PAGE:
            await _remove_orphans(ctx, team_hash, orphans, outcome)
            orphans = []
    await _remove_orphans(ctx, team_hash, orphans, outcome)


async def _rows(ctx: ApiContext, team_id: int) -> AsyncIterator[StoredRow]:
    after: str | None = None
    while True:
        page = await ctx.db.fetch(partial(team_rows, team_id=team_id, after=after, limit=PAGE))
        for row in page:
            yield row
        if len(page) < PAGE:
            return
        after = page[-1].id


async def _media_originals(listing: AsyncIterator[ListedOriginal]) -> AsyncIterator[
        ListedOriginal]:
    async for item in listing:
        if looks_like_media_id(item.uid):  # anything else was not stored by an upload
            yield item


async def _remove_orphans(ctx: ApiContext, team_hash: str, uids: list[str],
                          outcome: Outcome) -> None:
    if not uids:
        return
    # Once more, just before removing: a row committed since its page was read keeps it.
    owned = set(await ctx.db.fetch(partial(owning_rows, ids=uids)))
    for uid in uids:
        if uid in owned:
            continue
        if await ctx.store.delete(team_hash, uid):
            ORPHANS_REMOVED.inc()
            outcome.orphans_removed += 1
            log.warning("reconcile: removed original %s/%s, which no media row owns",
                        team_hash, uid)
        if ctx.purge is not None:
            await ctx.purge(team_hash, uid)


async def _take_lease(ctx: ApiContext, interval: float, now: float) -> bool:
    """True for the one process (of all sharing the database) that runs this window's pass."""
    window = int(now // interval)
    async with ctx.db.write() as conn:
        taken = await hit_window(conn, f"reconcile:{window}", 1,
                                 int((window + 2) * interval))
    return taken is not None


async def run_reconciler(ctx: ApiContext, interval: float, grace: float) -> None:
    """A pass per ``interval`` window (by one process) until cancelled; never fatal."""
    while True:
        try:
            if await _take_lease(ctx, interval, time.time()):
                outcome = await reconcile_once(ctx, grace=grace)
                if outcome.orphans_removed or outcome.missing:
                    log.warning("reconcile: %d originals in %d teams, %d orphans removed, "
                                "%d media without original", outcome.originals, outcome.teams,
                                outcome.orphans_removed, outcome.missing)
        except asyncio.CancelledError:
            raise
        except (DatabaseUnavailable, StoreUnavailable) as exc:  # an outage: try next time
            log.warning("reconcile pass skipped, retrying in %.0f s: %s", interval, exc)
        except Exception:
            log.exception("reconcile pass failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)
