"""The media object of the reference, as every endpoint returns it.

List items carry the fixed fields; a single media (get, upload, import, PATCH) also carries
its custom metadata at the top level. Metadata keys can never shadow a fixed field: they are
refused when set (see api/media_fields.py), and the fixed fields are written last here anyway.
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext
from api.db.media import MediaRecord


def media_json(ctx: ApiContext, record: MediaRecord, *, editable: bool,
               with_metadata: bool = True) -> dict[str, Any]:
    fixed: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "url": ctx.media_url(record.id),
        "src": ctx.media_src(record.team_hash, record.id, record.extension),
        "width": record.width,
        "height": record.height,
        "filesize": record.filesize,
        "extension": record.extension,
        "editable": editable,
        "tags": list(record.tags),
        "namespace": record.namespace,
        "public": record.public,
        "created_at": record.created_at,
    }
    if record.date is not None:
        fixed["date"] = record.date
    if record.external_id is not None:
        fixed["external_id"] = record.external_id
    if record.effective_expiry is not None:
        fixed["expires_at"] = record.effective_expiry
    if not with_metadata:
        return fixed
    return {**fixed, **{k: v for k, v in record.meta.items() if k not in fixed}}
