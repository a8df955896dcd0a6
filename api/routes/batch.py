"""PATCH /v1/media/batch and DELETE /v1/media/batch: up to 100 media of the caller's team, or
a whole namespace of any size (DELETE only; see ``api.lifecycle.deletion.delete_namespace``).

Ids of other teams (or unknown ids) are silently not matched; the counts say how many of the
caller's media were touched. A batch is all-or-nothing: one invalid result (e.g. a media that
would end up with more than 10 tags) refuses the whole batch with 422.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api.auth import require_key
from api.context import context_of
from api.db.media import (
    MediaRecord,
    by_team_ids,
    get_team_media,
    set_tags_many,
    update_many,
)
from api.errors import InvalidRequest, json_response
from api.intake.request_json import read_json_object
from api.lifecycle.deletion import delete_media, delete_namespace
from api.rules.ids import looks_like_media_id
from api.rules.media_fields import MAX_TAGS, parse_media_fields, parse_namespace

MAX_IDS = 100
UPDATE_FIELDS = frozenset({"tags", "tag_mode", "namespace", "public"})
TAG_MODES = ("replace", "add", "remove")


def parse_ids(value: Any, *, required: bool = True) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value or not all(isinstance(i, str) for i in value):
        raise InvalidRequest.field("ids", "The ids must be a non-empty list of media ids.")
    if len(value) > MAX_IDS:
        raise InvalidRequest.field("ids", f"At most {MAX_IDS} ids per batch.")
    # Strings that cannot be media ids match nothing: leave them out of the query.
    return [i for i in dict.fromkeys(value) if looks_like_media_id(i)]


def new_tags(current: list[str], given: list[str], mode: str) -> list[str]:
    if mode == "replace":
        return list(given)
    if mode == "add":
        return current + [t for t in given if t not in current]
    return [t for t in current if t not in given]


async def batch_update(request: Request) -> Response:
    ctx = context_of(request)
    owner = await require_key(request, "write")
    body = await read_json_object(request)
    ids = parse_ids(body.get("ids"))
    update = body.get("update")
    if not isinstance(update, dict) or not update:
        raise InvalidRequest.field("update", "The update must be a non-empty object.")
    unknown = sorted(set(update) - UPDATE_FIELDS)
    if unknown:
        raise InvalidRequest({f"update.{k}": ["This field cannot be changed in a batch."]
                              for k in unknown})
    mode = update.get("tag_mode", "replace")
    if mode not in TAG_MODES:
        raise InvalidRequest.field("update.tag_mode",
                                   "The tag_mode must be replace, add or remove.")
    try:
        fields = parse_media_fields({k: v for k, v in update.items() if k != "tag_mode"},
                                    allow_ttl=False)
    except InvalidRequest as bad:
        raise InvalidRequest({f"update.{k}": v for k, v in bad.errors.items()}) from None
    columns: dict[str, Any] = {k: fields[k] for k in ("namespace", "public") if k in fields}
    async with ctx.db.write() as conn:
        found = await get_team_media(conn, owner.team_id, ids)
        retagged: list[tuple[MediaRecord, list[str]]] = []
        for record in found:
            if "tags" in fields:
                tags = new_tags(record.tags, fields["tags"], mode)
                if len(tags) > MAX_TAGS:
                    raise InvalidRequest.field(
                        "update.tags", f"Media {record.id} would have more than {MAX_TAGS} tags.")
                if tags != record.tags:
                    retagged.append((record, tags))
        # A few statements per batch, not per media: the time of a batch of 100 stays that of
        # a single PATCH plus its rows.
        await set_tags_many(conn, owner.team_id, retagged)
        await update_many(conn, owner.team_id, found, columns)
    return json_response({"updated": len(found)})


async def batch_delete(request: Request) -> Response:
    ctx = context_of(request)
    owner = await require_key(request, "write")
    body = await read_json_object(request)
    has_ids, has_namespace = "ids" in body, "namespace" in body
    if has_ids == has_namespace:
        raise InvalidRequest.field("ids", "Send either ids or a namespace.")
    if has_ids:
        deleted = await delete_media(ctx, by_team_ids(owner.team_id, parse_ids(body["ids"])))
        return json_response({"deleted": deleted})
    try:
        namespace = parse_namespace(body["namespace"])
    except ValueError as bad:
        raise InvalidRequest.field("namespace", str(bad)) from None
    if namespace is None:
        raise InvalidRequest.field("namespace", "The namespace must be a non-empty string.")
    deleted = await delete_namespace(ctx, owner.team_id, namespace)
    return json_response({"deleted": deleted})
