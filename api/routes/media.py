"""GET /v1/media (list), GET/PATCH/DELETE /v1/media/{id}.

Reads are scoped by the caller: with a key, the key's team's media and anyone's public media;
without one, only public media. Anything else is 404, never 403, so ids of other teams' private
media leak nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response

from api.auth import check_ability, optional_key, require_key
from api.context import ApiContext, context_of
from api.db.media import (
    MediaRecord,
    by_team_ids,
    get_media,
    get_team_media,
    media_by_external_id,
    replace_tags,
    update_media,
)
from api.db.media_list import TagMode, list_media
from api.errors import Duplicate, InvalidRequest, NotFound, json_response
from api.intake.request_json import read_json_object
from api.lifecycle.deletion import delete_media
from api.rules.ids import looks_like_media_id
from api.rules.media_fields import (
    merge_metadata,
    parse_media_fields,
    parse_namespace,
    parse_search,
    parse_tags,
)
from api.rules.media_json import media_json

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def encode_cursor(record: MediaRecord) -> str:
    raw = orjson.dumps({"s": record.sort_at, "q": record.seq})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


SORT_AT_RANGE = range(-(2**63), 2**63)
"""``media.sort_at`` is a BIGINT."""
SEQ_RANGE = range(0, 2**63)
"""``media.seq`` is a BIGINT (revision 0002; PostgreSQL refuses a larger parameter)."""


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``(sort_at, seq)`` of a cursor we made; 422 for anything a query could not take.

    A cursor comes back from the client, so it is input like any other: both values must be
    integers (not booleans, which JSON and Python both let pass for numbers) inside their
    column's range, or PostgreSQL answers a driver error instead of an empty page.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
        sort_at, seq = value["s"], value["q"]
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise InvalidRequest.field("cursor", "The cursor is not valid.") from None
    if not (_integer_in(sort_at, SORT_AT_RANGE) and _integer_in(seq, SEQ_RANGE)):
        raise InvalidRequest.field("cursor", "The cursor is not valid.")
    return sort_at, seq


def _integer_in(value: object, allowed: range) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in allowed


def parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest.field("limit", f"The limit must be an integer from 1 to {MAX_LIMIT}.")
    return int(value)


def parse_tag_mode(value: str | None) -> TagMode:
    if value is None or value == "all":
        return "all"
    if value == "any":
        return "any"
    raise InvalidRequest.field("tag_mode", "The tag_mode must be 'all' or 'any'.")


def media_id_param(request: Request) -> str:
    """The ``{id}`` of the path; ids that cannot exist are 404 before any query."""
    media_id = str(request.path_params["id"])
    if not looks_like_media_id(media_id):
        raise NotFound("Image not found.")
    return media_id


def _field(parse: Any, name: str, value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as bad:
        raise InvalidRequest.field(name, str(bad)) from None


async def list_handler(request: Request) -> Response:
    ctx = context_of(request)
    owner = await require_key(request, "read")
    params = request.query_params
    namespace = _field(parse_namespace, "namespace", params.get("namespace"))
    tags = _field(parse_tags, "tags", params.get("tags"))
    tag_mode = parse_tag_mode(params.get("tag_mode"))
    search = _field(parse_search, "search", params.get("search"))
    limit = parse_limit(params.get("limit"))
    cursor = params.get("cursor")
    after = decode_cursor(cursor) if cursor else None
    async with ctx.db.read() as conn:
        page = await list_media(conn, owner.team_id, namespace=namespace, tags=tags,
                                tag_mode=tag_mode, after=after, limit=limit + 1,
                                search=search)
    has_more = len(page) > limit
    page = page[:limit]
    editable = "write" in owner.abilities
    return json_response({
        "items": [media_json(ctx, m, editable=editable, with_metadata=False) for m in page],
        "cursor": encode_cursor(page[-1]) if has_more and page else None,
        "has_more": has_more,
    })


async def visible_media(ctx: ApiContext, request: Request,
                        media_id: str) -> tuple[MediaRecord, bool]:
    """The media the caller may see, and whether it may edit it; 404 otherwise."""
    owner = await optional_key(request)
    if owner is not None:
        check_ability(owner, "read")
        async with ctx.db.read() as conn:
            found = await get_team_media(conn, owner.team_id, [media_id])
        if found:
            return found[0], "write" in owner.abilities
    # A public image is public to everyone, also to a caller with another team's key.
    async with ctx.db.read() as conn:
        record = await get_media(conn, media_id)
    if record is not None and record.public and not _expired(ctx, record):
        return record, False
    raise NotFound("Image not found.")


def _expired(ctx: ApiContext, record: MediaRecord) -> bool:
    expiry = record.effective_expiry
    return expiry is not None and expiry <= ctx.now()


async def get_handler(request: Request) -> Response:
    ctx = context_of(request)
    record, editable = await visible_media(ctx, request, media_id_param(request))
    return json_response(media_json(ctx, record, editable=editable))


async def patch_handler(request: Request) -> Response:
    ctx = context_of(request)
    owner = await require_key(request, "write")
    media_id = media_id_param(request)
    body = await read_json_object(request)
    fields = parse_media_fields(body, allow_ttl=True)
    now = ctx.now()
    try:
        async with ctx.db.write() as conn:
            found = await get_team_media(conn, owner.team_id, [media_id])
            if not found:
                raise NotFound("Image not found.")
            record = found[0]
            changes = _changes(record, fields, now)
            await update_media(conn, record, changes)
            if "tags" in fields:
                await replace_tags(conn, record.seq, owner.team_id, fields["tags"],
                                   changes.get("sort_at", record.sort_at))
            updated = (await get_team_media(conn, owner.team_id, [media_id]))[0]
    except IntegrityError:
        async with ctx.db.read() as conn:
            existing = await media_by_external_id(conn, owner.team_id, fields["external_id"])
        raise Duplicate(
            "Another media of your team already has this external_id.",
            extra={"media": media_json(ctx, existing, editable=True)} if existing else None,
        ) from None
    return json_response(media_json(ctx, updated, editable=True))


def _changes(record: MediaRecord, fields: dict[str, Any], now: int) -> dict[str, Any]:
    changes: dict[str, Any] = {
        k: fields[k] for k in ("name", "namespace", "public", "external_id") if k in fields
    }
    if "date" in fields:
        changes["date"] = fields["date"]
        changes["sort_at"] = fields["date"] if fields["date"] is not None else record.created_at
    if "ttl" in fields:
        changes["expires_at"] = now + fields["ttl"]
    if "metadata" in fields:
        changes["meta"] = merge_metadata(record.meta, fields["metadata"])
    return changes


async def delete_handler(request: Request) -> Response:
    ctx = context_of(request)
    owner = await require_key(request, "write")
    if not await delete_media(ctx, by_team_ids(owner.team_id, [media_id_param(request)])):
        raise NotFound("Image not found.")
    return json_response({"deleted": True})
