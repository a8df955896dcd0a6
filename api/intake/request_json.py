"""Read a JSON object body with a size cap; anything else is the reference's 422."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from api.errors import InvalidRequest
from api.intake.body_stream import body_chunks

MAX_JSON_BYTES = 1024 * 1024


async def read_json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The body as a dict; 422 ``validation_error`` if too large, malformed or not an object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise InvalidRequest.field("body", "The JSON body may be at most 1 MB.")
    body = bytearray()
    async for chunk in body_chunks(request):
        body.extend(chunk)
        if len(body) > MAX_JSON_BYTES:
            raise InvalidRequest.field("body", "The JSON body may be at most 1 MB.")
    if not body.strip() and allow_empty:
        return {}
    try:
        value = orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        raise InvalidRequest.field("body", "The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidRequest.field("body", "The body must be a JSON object.")
    return value
