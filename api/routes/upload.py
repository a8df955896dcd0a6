"""POST /v1/upload: a multipart image, with or without a key."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.auth import check_ability, optional_key
from api.context import context_of
from api.errors import ApiError
from api.intake.body_stream import drain_small_body
from api.intake.ingest import admit, check_fields_for, ingest, uploader_for
from api.intake.upload_form import read_upload_form
from api.rules.media_fields import RESERVED_FIELDS, parse_media_fields
from api.rules.plans import max_file_bytes


async def upload(request: Request) -> Response:
    ctx = context_of(request)
    owner = await optional_key(request)
    if owner is not None:
        check_ability(owner, "write")
    uploader = await uploader_for(ctx, owner)
    headers: dict[str, str] = {}
    body_read = reading = False
    try:
        headers = await admit(ctx, request, uploader, ctx.now())
        reading = True
        form = await read_upload_form(
            request, lambda svg: max_file_bytes(authenticated=owner is not None, svg=svg)
        )
        body_read = True
        # A browser form sends its blank optional inputs as empty strings: they mean "not set".
        sent = {k: v for k, v in form.fields.items() if not (k in RESERVED_FIELDS and v == "")}
        fields = parse_media_fields(sent, allow_ttl=owner is not None)
        check_fields_for(uploader, fields)
        assert form.file is not None
        return await ingest(ctx, uploader, form.file, fields, form.filename, headers)
    except ApiError as error:
        error.headers = {**headers, **error.headers}
        # Refused without reading the body: a small one is read first so the answer arrives
        # (see drain_small_body); otherwise close rather than take what the client sends.
        if not body_read and (reading or not await drain_small_body(request)):
            error.headers["Connection"] = "close"
        raise
