"""Turn a received body into a stored original and a media row: the common tail of upload/import.

Steps, in order (each can refuse; nothing is left behind when one does):
1. probe the content (type, dimensions) with the transform library: never the name or the
   client's content type; SVG gets its own size limit once we know it is SVG (a body that
   sniffs as SVG and is over that limit is refused before the probe reads it);
2. an ``external_id`` that already exists -> 409 with the existing media (checked first, and
   again by the unique index when two requests race);
3. write the original to the store under a fresh media id;
4. one transaction: take the quota (monthly upload + bytes) and insert the row. A duplicate
   or a quota refusal rolls the transaction back and removes the original again. When the
   outcome of the COMMIT is unknown (the connection broke during it, or the request was
   cancelled), the original is kept: the row may exist. An original left without a row
   (this, or a crash between 3 and 4) is removed by the reconciler
   (``api.lifecycle.reconcile``) after a grace period.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response

import transformer
from api.context import ApiContext
from api.db import DatabaseUnavailable
from api.db.accounts import KeyOwner, anonymous_team
from api.db.counters import hit_window, take_storage, window_count
from api.db.media import MediaRecord, get_media, insert_media, media_by_external_id
from api.errors import (
    ApiError,
    Duplicate,
    FileTooLarge,
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
    UnsupportedFormat,
    json_response,
)
from api.intake.body_budget import BodyBudgetExhausted
from api.intake.spool import SpooledBody
from api.rules.client_ip import client_ip
from api.rules.ids import new_media_id
from api.rules.media_fields import display_name
from api.rules.media_json import media_json
from api.rules.plans import DAY, MB, RETENTION_DAYS, max_file_bytes
from api.rules.quotas import check_quota, quota_state, take_quota
from api.rules.rate_limits import (
    ANONYMOUS_UPLOADS_DAILY,
    ANONYMOUS_UPLOADS_HOURLY,
    anonymous_headers,
    hit,
    refused_uploads_window,
)
from transformer.originals import StoreUnavailable

log = logging.getLogger("imgpro.api")


@dataclass(frozen=True, slots=True)
class Uploader:
    """Who stores the media: a key's team, or the shared anonymous team."""

    owner: KeyOwner | None
    team_id: int
    team_hash: str

    @property
    def anonymous(self) -> bool:
        return self.owner is None


async def uploader_for(ctx: ApiContext, owner: KeyOwner | None) -> Uploader:
    if owner is not None:
        return Uploader(owner, owner.team_id, owner.team_hash)
    team = await ctx.db.fetch(anonymous_team)
    return Uploader(None, team["id"], team["hash"])


def check_fields_for(uploader: Uploader, fields: dict[str, Any]) -> None:
    """Fields that only make sense with a key (the anonymous team is shared by everybody)."""
    if uploader.anonymous and fields.get("external_id") is not None:
        raise InvalidRequest.field("external_id", "The external_id field requires an API key.")


async def probe_image(ctx: ApiContext, body: SpooledBody, *,
                      authenticated: bool) -> transformer.ImageInfo:
    if transformer.sniff_format(body.head) == "svg":
        limit = max_file_bytes(authenticated=authenticated, svg=True)
        if body.size > limit:
            raise FileTooLarge(f"The file exceeds the size limit of {limit // MB} MB.")
    try:
        info = await asyncio.to_thread(body.probe, max_pixels=ctx.max_pixels)
    except transformer.ImageTooLarge as exc:
        raise FileTooLarge(f"The image is too large: {exc.message}") from None
    except transformer.TransformError as exc:
        raise UnsupportedFormat(
            f"Not a supported image ({exc.message}); accepted: JPEG, PNG, WebP, GIF, SVG, HEIC, "
            "AVIF, TIFF or BMP."
        ) from None
    limit = max_file_bytes(authenticated=authenticated, svg=info.format == "svg")
    if body.size > limit:
        raise FileTooLarge(f"The file exceeds the size limit of {limit // MB} MB.")
    return info


async def ingest(ctx: ApiContext, uploader: Uploader, body: SpooledBody, fields: dict[str, Any],
                 default_name: str | None, extra_headers: dict[str, str]) -> Response:
    """Store ``body`` as a new media of ``uploader`` and answer 201 (or raise an ApiError)."""
    owner = uploader.owner
    size = body.size
    info = await probe_image(ctx, body, authenticated=owner is not None)
    external_id = fields.get("external_id")
    if external_id is not None:
        async with ctx.db.read() as conn:
            existing = await media_by_external_id(conn, uploader.team_id, external_id)
        if existing is not None:
            raise await _duplicate(ctx, uploader, existing)

    media_id = new_media_id()
    now = ctx.now()
    values = _row_values(uploader, media_id, info, size, fields, default_name, now)
    try:
        await ctx.store.put(uploader.team_hash, media_id, body.payload())
    except StoreUnavailable:
        raise ServiceUnavailable("The originals store is unavailable; try again shortly.") from None
    try:
        async with ctx.db.write() as conn:
            if owner is not None:
                await take_quota(conn, ctx, owner, size, now)
            else:
                await take_storage(conn, uploader.team_id, size, None)
            await insert_media(conn, values, fields.get("tags") or [])
            record = await get_media(conn, media_id)
            headers = dict(extra_headers)
            if owner is not None:
                headers.update((await quota_state(conn, owner, now)).headers())
    except IntegrityError:
        await _remove_original(ctx, uploader.team_hash, media_id)
        if external_id is None:
            raise
        async with ctx.db.read() as conn:
            existing = await media_by_external_id(conn, uploader.team_id, external_id)
        if existing is None:  # the other request's row vanished again (deleted): not a dup
            raise ServiceUnavailable("A concurrent change interfered; try again.",
                                     retry_after=1) from None
        raise await _duplicate(ctx, uploader, existing) from None
    except DatabaseUnavailable as error:
        if error.outcome_unknown:  # the row may exist: the reconciler decides later
            log.warning("upload %s/%s: the database connection broke while committing; its "
                        "original is kept until reconciled", uploader.team_hash, media_id)
        else:
            await _remove_original(ctx, uploader.team_hash, media_id)
        raise
    except asyncio.CancelledError:
        # Cancelled (shutdown) maybe while the COMMIT was on its way: whether the row exists
        # is unknown, so the original stays; the reconciler removes it if no row came.
        raise
    except BaseException:
        await _remove_original(ctx, uploader.team_hash, media_id)
        raise
    assert record is not None
    answer = media_json(ctx, record, editable=_editable(owner))
    if owner is None:
        answer["upgrade"] = anonymous_upgrade(ctx)
    return json_response(answer, 201, headers)


def _row_values(uploader: Uploader, media_id: str, info: transformer.ImageInfo, size: int,
                fields: dict[str, Any], default_name: str | None, now: int) -> dict[str, Any]:
    owner = uploader.owner
    unverified = owner is None or not owner.verified
    date = fields.get("date")
    ttl = fields.get("ttl")
    metadata = {k: v for k, v in (fields.get("metadata") or {}).items() if v is not None}
    return {
        "id": media_id,
        "team_id": uploader.team_id,
        "account_id": owner.account_id if owner else None,
        "name": fields.get("name") or display_name(default_name) or f"{media_id}.{info.format}",
        "extension": info.format,
        "width": info.width,
        "height": info.height,
        "filesize": size,
        "namespace": fields.get("namespace"),
        "public": fields.get("public", True),
        "external_id": fields.get("external_id"),
        "meta": metadata,
        "date": date,
        "sort_at": date if date is not None else now,
        "created_at": now,
        "expires_at": now + ttl if ttl else None,
        "retain_until": now + RETENTION_DAYS * DAY if unverified else None,
    }


def _editable(owner: KeyOwner | None) -> bool:
    return owner is not None and "write" in owner.abilities


async def _duplicate(ctx: ApiContext, uploader: Uploader, existing: MediaRecord) -> Duplicate:
    headers: dict[str, str] = {}
    if uploader.owner is not None:
        async with ctx.db.read() as conn:
            headers = (await quota_state(conn, uploader.owner, ctx.now())).headers()
    return Duplicate(
        "A media with this external_id already exists in your team.",
        extra={"media": media_json(ctx, existing, editable=_editable(uploader.owner))},
        headers=headers,
    )


async def _remove_original(ctx: ApiContext, team_hash: str, media_id: str) -> None:
    try:
        await ctx.store.delete(team_hash, media_id)
    except Exception:  # the sweeper cannot know about it; log loudly, never mask the cause
        log.exception("could not remove original %s/%s after a failed upload", team_hash, media_id)


async def count_refusal(ctx: ApiContext, uploader: Uploader, error: ApiError) -> None:
    """Count a refused authenticated attempt against its team's hourly allowance.

    Anonymous attempts were counted against the per-IP limits when they were admitted. A
    failure to count (the database away) is logged and never replaces the refusal itself.
    """
    counted = error.code in REFUSALS_COUNTED or isinstance(error, BodyBudgetExhausted)
    if uploader.owner is None or not counted or ctx.settings.rate_limits == "off":
        return
    now = ctx.now()
    window = refused_uploads_window(ctx.settings.refused_uploads_per_hour)
    try:
        async with ctx.db.write() as conn:
            await hit_window(conn, window.key(str(uploader.team_id), now), window.limit,
                             window.reset(now))
    except Exception as exc:  # noqa: BLE001 - the refusal must reach the client regardless
        log.warning("could not count a refused upload of team %s: %s", uploader.team_id, exc)


def anonymous_upgrade(ctx: ApiContext) -> dict[str, str]:
    """The ``upgrade`` object of anonymous uploads: how to keep images beyond 30 days."""
    return {
        "type": "register",
        "url": f"{ctx.settings.effective_public_url}/v1/upgrade",
        "message": f"Anonymous uploads are deleted after {RETENTION_DAYS} days. Create a free API "
                   "key (POST /v1/keys with your email) and verify it to keep images permanently.",
        "label": "Get a free API key",
    }


REFUSALS_COUNTED = frozenset({"unsupported_format", "file_too_large"})
"""Refusals of an authenticated upload/import that count against the team's hourly allowance
of refused attempts (with a full body budget's 503): what a client could repeat at will."""


async def admit(ctx: ApiContext, request: Request, uploader: Uploader, now: int) -> dict[str, str]:
    """Refuse before any body is read: anonymous per-IP limits, a team that used up its
    refused attempts of the hour, or a quota already used up.

    Returns the headers the response carries, also when it ends in an error: X-RateLimit-* for
    anonymous callers, the quota headers as they stand for authenticated ones (a 201 replaces
    them with the counts after the upload).
    """
    if uploader.owner is not None:
        window = refused_uploads_window(ctx.settings.refused_uploads_per_hour)
        async with ctx.db.read() as conn:
            state = await quota_state(conn, uploader.owner, now)
            refused = await window_count(conn, window.key(str(uploader.team_id), now))
        if ctx.settings.rate_limits == "on" and refused >= window.limit:
            wait = window.reset(now) - now
            raise RateLimited(
                f"Too many refused uploads: at most {window.limit} per hour may be refused "
                f"(not an image, too large, or the server busy). Try again in {wait} seconds.",
                retry_after=wait, headers=state.headers())
        check_quota(ctx, uploader.owner, state)
        return state.headers()
    if ctx.settings.rate_limits == "off":
        return {}
    ip = client_ip(request.scope, ctx.settings.trusted_proxies)
    checks = [(ANONYMOUS_UPLOADS_HOURLY, ip), (ANONYMOUS_UPLOADS_DAILY, ip)]
    return anonymous_headers(await hit(ctx.db, checks, now, anonymous_headers))
