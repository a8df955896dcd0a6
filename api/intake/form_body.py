"""Read a small ``application/x-www-form-urlencoded`` body: the confirmation buttons' forms.

The one form we receive carries a signed token; anything much larger is not ours, so the body
is capped and read through ``body_chunks`` (idle and total time limits) like every other body.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

from api.errors import InvalidRequest
from api.intake.body_stream import body_chunks

MAX_FORM_BYTES = 8 * 1024
MAX_FIELDS = 20


async def read_small_form(request: Request) -> dict[str, str]:
    """Field -> first value; 422 ``validation_error`` for a body over 8 KiB, not UTF-8, or with
    more than ``MAX_FIELDS`` fields."""
    body = bytearray()
    async for chunk in body_chunks(request):
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequest.field("body", "The form may be at most 8 KiB.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict",
                          max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:  # raw or percent-encoded bytes that are not UTF-8
        raise InvalidRequest.field("body", "The form is not UTF-8.") from None
    except ValueError:
        raise InvalidRequest.field("body", f"The form may have at most {MAX_FIELDS} fields.") \
            from None
    return {name: values[0] for name, values in fields.items()}
