"""GET /v1/usage and GET /v1/namespaces: the team's quota and its namespace totals.

Usage reads the same counters as the X-Monthly-Uploads-* / X-Storage-* headers, so the two
always agree; namespaces read ``namespace_totals``. Both cost the same at ten media or ten
million: no request aggregates the team's rows.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import require_key
from api.context import context_of
from api.db.counters import namespace_totals_of
from api.errors import json_response
from api.rules.quotas import quota_state


async def usage(request: Request) -> Response:
    ctx = context_of(request)
    owner = await require_key(request, "read")
    async with ctx.db.read() as conn:
        state = await quota_state(conn, owner, ctx.now())
    return json_response({
        "plan": state.plan.name,
        "uploads_used": state.uploads_used,
        "uploads_limit": state.plan.uploads_per_month,
        "uploads_remaining": state.uploads_remaining,
        "storage_used_bytes": state.storage_used,
        "storage_limit_bytes": state.plan.storage_bytes,
        "resets_at": state.resets_at,
        "verified": owner.verified,
    })


async def namespaces(request: Request) -> Response:
    ctx = context_of(request)
    owner = await require_key(request, "read")
    async with ctx.db.read() as conn:
        totals = await namespace_totals_of(conn, owner.team_id)
    return json_response({"namespaces": [
        {"namespace": name, "count": count, "storage_bytes": size} for name, count, size in totals
    ]})
