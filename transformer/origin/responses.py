"""The origin's answers as raw ASGI messages: renditions, originals' headers, redirects, errors.

Kept apart from the app so that the one function that builds a rendition's answer
(``entry_answer``) serves both the ASGI path and the HTTP protocol's memory-hit path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cache import Entry, Layer
from transformer import MEDIA_TYPES
from transformer.origin.error_body import action, error_json
from transformer.origin.errors import CdnError
from transformer.origin.http_cache import IMMUTABLE, is_not_modified

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]
"""A whole response (status, headers, body) that needed nothing awaited to build."""

COMMON_HEADERS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"access-control-allow-origin", b"*"),
]
# An SVG original opened directly must not run script on our origin.
_SVG_HEADERS: Headers = [
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; sandbox"),
]
ERROR_MAX_AGE = b"public, max-age=60"
"""A 4xx may be kept a minute by a CDN: a URL that is wrong now is rarely right a second later."""


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


FINAL = b"final"
PROVISIONAL = b"provisional"


def provisional_cache_control(max_age: int) -> bytes:
    """A provisional rendition may be kept briefly, never as immutable: it will be replaced."""
    return b"public, max-age=%d" % max_age


def image_headers(media_type: str, etag: bytes, layer: str, *,
                  cache_control: bytes = IMMUTABLE, rendition: bytes | None = None) -> Headers:
    """Headers of every image answer (a rendition or an original), before Content-Length."""
    headers = [
        (b"content-type", media_type.encode()),
        (b"etag", etag),
        (b"cache-control", cache_control),
        (b"x-cache", layer.encode()),
        *COMMON_HEADERS,
    ]
    if rendition is not None:
        headers.append((b"x-rendition", rendition))
    if media_type == MEDIA_TYPES["svg"]:
        headers.extend(_SVG_HEADERS)
    return headers


def entry_answer(entry: Entry, media_type: str, layer: Layer, if_none_match: bytes | None,
                 head_only: bool, provisional: bytes) -> Answer:
    """200 with the rendition (headers only for HEAD), or 304 when the client has the current
    one. ``provisional`` is the Cache-Control of a provisional entry: a revalidation with its
    ETag after the final one was swapped in gets 200 and the final bytes."""
    etag = entry.etag.encode()
    if entry.final:
        headers = image_headers(media_type, etag, layer, rendition=FINAL)
    else:
        headers = image_headers(media_type, etag, layer, cache_control=provisional,
                                rendition=PROVISIONAL)
    if is_not_modified(if_none_match, etag):
        return 304, headers, b""
    headers.append((b"content-length", str(len(entry.data)).encode()))
    return 200, headers, b"" if head_only else entry.data


def error_answer(exc: CdnError, head_only: bool) -> Answer:
    """The reference's error shape; a 503 says when to come back and is never cached."""
    headers = [(b"content-type", b"application/json"), *COMMON_HEADERS]
    wait = None
    if exc.retry_after is not None:
        wait = action("wait", seconds=exc.retry_after)
        headers.append((b"retry-after", str(exc.retry_after).encode()))
        headers.append((b"cache-control", b"no-store"))
    else:
        headers.append((b"cache-control", ERROR_MAX_AGE))
    if exc.status == 405:
        headers.append((b"allow", b"GET, HEAD"))
    body = error_json(exc.code, exc.message, action=wait, errors=exc.errors)
    headers.append((b"content-length", str(len(body)).encode()))
    return exc.status, headers, b"" if head_only else body


def redirect_answer(location: str) -> Answer:
    """A permanent redirect: where a URL points never changes, so CDNs may keep it."""
    headers = [(b"location", location.encode()), (b"cache-control", IMMUTABLE),
               (b"content-length", b"0"), *COMMON_HEADERS]
    return 301, headers, b""


async def send_answer(send: Send, answer: Answer) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
