"""POST /v1/import: fetch an image from a URL server-side (SSRF-guarded) and store it."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from api.auth import check_ability, optional_key
from api.context import context_of
from api.errors import ApiError, FetchFailed, FileTooLarge, InvalidRequest, MissingUrl
from api.intake.ingest import admit, check_fields_for, count_refusal, ingest, uploader_for
from api.intake.request_json import read_json_object
from api.intake.url_import import FetchTooLarge, ImportFetchError, fetch_image
from api.rules.media_fields import parse_media_fields
from api.rules.plans import MB, max_file_bytes


def name_from_url(url: str) -> str | None:
    """The last path segment of the URL ("photo.jpg"), the default display name."""
    return posixpath.basename(unquote(urlsplit(url).path)) or None


async def import_(request: Request) -> Response:
    ctx = context_of(request)
    owner = await optional_key(request)
    if owner is not None:
        check_ability(owner, "write")
    body = await read_json_object(request)
    url = body.get("url")
    if url is None or (isinstance(url, str) and not url.strip()):
        raise MissingUrl("No URL provided: send {\"url\": \"https://...\"}.")
    if not isinstance(url, str):
        raise InvalidRequest.field("url", "The url must be a string.")
    uploader = await uploader_for(ctx, owner)
    fields = parse_media_fields(body, allow_ttl=owner is not None)
    check_fields_for(uploader, fields)
    headers = await admit(ctx, request, uploader, ctx.now())
    limit = max_file_bytes(authenticated=owner is not None, svg=False)
    try:
        # The download goes into a spooled body whose room in the body budget is reserved
        # once the source declares its length (the limit when it does not).
        async with ctx.new_body(max_bytes=limit) as received:
            try:
                fetched = await fetch_image(url.strip(), max_bytes=limit, into=received,
                                            allow_private=ctx.settings.import_allow_private)
            except FetchTooLarge:
                raise FileTooLarge(
                    f"The image exceeds the size limit of {limit // MB} MB.") from None
            except ImportFetchError as exc:
                raise FetchFailed(f"Could not fetch the URL: {exc}") from None
            return await ingest(ctx, uploader, received, fields,
                                name_from_url(fetched.final_url), headers)
    except ApiError as error:
        await count_refusal(ctx, uploader, error)
        error.headers = {**headers, **error.headers}
        raise
