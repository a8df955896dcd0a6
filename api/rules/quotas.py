"""Monthly upload and storage quotas of a team, their headers, and the 413 with its upgrade link.

``take_quota`` runs inside the transaction that inserts the media row: the monthly counter
and the stored bytes move together with the row, or not at all. Both are conditional updates
(see api/db/counters.py), so two uploads racing for the last unit cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncConnection

from api.context import ApiContext
from api.db.accounts import KeyOwner
from api.db.counters import take_monthly_upload, take_storage, team_usage
from api.errors import QuotaExceeded, action
from api.rules.plans import Plan, month_key, month_resets_at, next_plan, plan_named

UPGRADE_LINK_MAX_AGE = 30 * 86_400


@dataclass(frozen=True, slots=True)
class QuotaState:
    plan: Plan
    uploads_used: int
    storage_used: int
    resets_at: int

    @property
    def uploads_remaining(self) -> int:
        return max(0, self.plan.uploads_per_month - self.uploads_used)

    @property
    def storage_remaining(self) -> int:
        return max(0, self.plan.storage_bytes - self.storage_used)

    def headers(self) -> dict[str, str]:
        """The reference's quota headers of authenticated upload/import responses."""
        return {
            "X-Monthly-Uploads-Used": str(self.uploads_used),
            "X-Monthly-Uploads-Limit": str(self.plan.uploads_per_month),
            "X-Monthly-Uploads-Remaining": str(self.uploads_remaining),
            "X-Storage-Used": str(self.storage_used),
            "X-Storage-Limit": str(self.plan.storage_bytes),
            "X-Storage-Remaining": str(self.storage_remaining),
        }


async def quota_state(conn: AsyncConnection, owner: KeyOwner, now: int) -> QuotaState:
    uploads, stored = await team_usage(conn, owner.team_id, month_key(now))
    return QuotaState(plan_named(owner.plan), uploads, stored, month_resets_at(now))


def upgrade_url(ctx: ApiContext, owner: KeyOwner) -> str:
    """A signed one-click link: it names the team, so it works without logging in."""
    target = next_plan(owner.plan)
    token = ctx.signer.sign("upgrade", {"team": owner.team_hash,
                                        "plan": target.name if target else owner.plan})
    return f"{ctx.settings.effective_public_url}/v1/upgrade?{urlencode({'token': token})}"


def quota_exceeded(ctx: ApiContext, owner: KeyOwner, state: QuotaState, what: str) -> QuotaExceeded:
    target = next_plan(owner.plan)
    label = f"Upgrade to {target.name.capitalize()}" if target else "Contact us"
    return QuotaExceeded(
        f"{what} quota of the {state.plan.name} plan reached.",
        action=action("upgrade", url=upgrade_url(ctx, owner), label=label),
        headers=state.headers(),
    )


def check_quota(ctx: ApiContext, owner: KeyOwner, state: QuotaState, size: int = 0) -> None:
    """Refuse early (before reading a body) when the quota is already used up."""
    if state.uploads_used >= state.plan.uploads_per_month:
        raise quota_exceeded(ctx, owner, state, "Monthly upload")
    if state.storage_used + size > state.plan.storage_bytes:
        raise quota_exceeded(ctx, owner, state, "Storage")


async def take_quota(conn: AsyncConnection, ctx: ApiContext, owner: KeyOwner, size: int,
                     now: int) -> None:
    """Count one upload of ``size`` bytes, atomically; raises QuotaExceeded (caller rolls back)."""
    plan = plan_named(owner.plan)
    if not await take_monthly_upload(conn, owner.team_id, month_key(now), plan.uploads_per_month):
        raise quota_exceeded(ctx, owner, await quota_state(conn, owner, now), "Monthly upload")
    if not await take_storage(conn, owner.team_id, size, plan.storage_bytes):
        state = await quota_state(conn, owner, now)
        # The rollback will also undo this request's monthly upload: report the count without it.
        state = replace(state, uploads_used=state.uploads_used - 1)
        raise quota_exceeded(ctx, owner, state, "Storage")
