"""The CDN transform origin: ``GET|HEAD /{team_hash}/{uid}.{ext}?size=s|m|l``.

A request, route to bytes:

1. ``__call__`` parses the path and ``size`` (``parse_request``); anything else is a fast 4xx.
2. The rendition key is ``team/uid/<size>.<format>.<encoder version>``. The memory layer is
   checked synchronously; then the disk layer; then ONE producer per key (coalescing) takes a
   slot in the bounded ``TransformPool``, reads the original from the originals store, and runs
   ``transformer.transform`` in a thread. A full pool answers 503 + Retry-After.
3. No size and the original's own extension: the original bytes are streamed unchanged.
4. Responses carry exact Content-Type/Content-Length, a strong ETag (content digest),
   ``Cache-Control: public, max-age=31536000, immutable``; If-None-Match gives 304.

Most memory hits never reach ``__call__``: served by ``imgpro serve``, the HTTP protocol asks
``answer_from_memory`` first, as soon as a request's head is parsed (``api.serving.http_protocol``),
and writes the answer itself; ``entry_answer`` builds it on both paths.

No database is involved: the URL names the original. A deleted image disappears because its
original is gone; cached renditions are re-checked against the store at most every
``revalidate_seconds`` per process, and the process that handles a delete purges at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from cachetools import TTLCache

import transformer
from cache import Entry, Layer, RenditionCache
from transformer import (
    EXTENSION_ALIASES,
    FORMATS,
    MEDIA_TYPES,
    SIZES,
    SNIFF_BYTES,
    Size,
    TransformError,
    sniff_format,
)
from transformer.origin import metrics
from transformer.origin.http_cache import IMMUTABLE, is_not_modified
from transformer.origin.pool import Overloaded, TransformPool
from transformer.originals import OriginalNotFound, OriginalsStore, StoreUnavailable

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]
"""A whole response (status, headers, body) that needed nothing awaited to build."""

CDN_PATH = re.compile(r"^/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9]{1,5})$")
"""What a CDN URL looks like; the composed app routes matching paths here."""
_SIMPLE_QUERY = re.compile(rb"^(?:size=([A-Za-z]{0,8}))?$")

ORIGINAL_EXTENSIONS: dict[str, str] = {
    **EXTENSION_ALIASES,
    "gif": "gif",
    "svg": "svg",
    "heic": "heic",
    "heif": "heic",
    "tif": "tiff",
    "tiff": "tiff",
    "bmp": "bmp",
}
"""Extensions a URL may carry: the four output formats, plus originals served unchanged."""

_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"access-control-allow-origin", b"*"),
]
# An SVG original opened directly must not run script on our origin.
_SVG_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; sandbox"),
]


@dataclass(frozen=True, slots=True)
class OriginConfig:
    threads: int = 2
    queue_limit: int = 8
    max_pixels: int = 100_000_000
    transform_timeout: float = 30.0
    revalidate_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class CdnRequest:
    team_hash: str
    uid: str
    kind: str  # output format, or an original-only type such as gif
    size: Size | None

    @property
    def group(self) -> str:
        return f"{self.team_hash}/{self.uid}"

    def key(self, version: str) -> str:
        return f"{self.group}/{self.size or 'o'}.{self.kind}.{version}"


class CdnError(Exception):
    """An answer in the reference's error shape."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None,
                 errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after, self.errors = retry_after, errors


def parse_request(path: str, query_string: bytes) -> CdnRequest:
    """Validate a CDN URL; raises CdnError with the status the client should see."""
    match = CDN_PATH.match(path)
    if match is None:
        raise CdnError(404, "not_found", "No image at this address.")
    team_hash, uid, ext = match.groups()
    kind = ORIGINAL_EXTENSIONS.get(ext.lower())
    if kind is None:
        raise CdnError(400, "unsupported_format",
                       f"Unsupported extension .{ext}: use .jpeg, .jpg, .png, .webp or .avif.")
    simple = _SIMPLE_QUERY.match(query_string)  # "", "size=m": skip the general parser
    if simple is not None:
        size = simple.group(1).decode() if simple.group(1) else None
    else:
        sizes = {value or None for name, value in
                 parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
                 if name == "size"}
        if len(sizes) > 1:  # which one was meant? (a CDN may also keep only one of them)
            raise CdnError(422, "validation_error", "Give the size parameter once.",
                           errors={"size": ["given more than once with different values"]})
        size = sizes.pop() if sizes else None
    if size is not None and size not in SIZES:
        raise CdnError(422, "validation_error", "The size parameter must be s, m or l.",
                       errors={"size": ["must be one of s, m, l"]})
    return CdnRequest(team_hash, uid, kind, size)


RESIZED_STAND_IN = "webp"
"""What ``?size=`` on an original-only extension (gif, svg, tiff, bmp, heic) redirects to: WebP
keeps a GIF's animation and any transparency, and every current browser shows it. A redirect,
not a WebP body under a .gif name, so a URL's extension always names the bytes it serves."""


def resized_stand_in(request: CdnRequest) -> str | None:
    """The path to redirect to when a size is asked of a format we only serve unchanged."""
    if request.size is None or request.kind in FORMATS:
        return None
    return f"/{request.team_hash}/{request.uid}.{RESIZED_STAND_IN}?size={request.size}"


class CdnOrigin:
    """The ASGI app for CDN paths; ``start``/``close`` run in the host app's lifespan."""

    def __init__(self, store: OriginalsStore, cache: RenditionCache, config: OriginConfig) -> None:
        self.store = store
        self.cache = cache
        self.config = config
        self.pool: TransformPool | None = None
        self.version = transformer.ENCODER_SETTINGS_VERSION
        # Groups whose original was seen in the store recently: hits in this window skip a check.
        self._validated: TTLCache[str, bool] | None = (
            TTLCache(maxsize=200_000, ttl=config.revalidate_seconds)
            if config.revalidate_seconds > 0 else None
        )

    async def start(self) -> None:
        transformer.configure()
        self.pool = TransformPool(self.config.threads, self.config.queue_limit)
        await self.cache.start()

    async def close(self) -> None:
        await self.cache.close()
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)

    async def purge(self, team_hash: str, uid: str) -> None:
        """Forget every cached rendition of one image (called by the API on delete)."""
        group = f"{team_hash}/{uid}"
        if self._validated is not None:
            self._validated.pop(group, None)
        await self.cache.purge(group)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head_only = scope["method"] == "HEAD"
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise CdnError(405, "method_not_allowed", "Use GET or HEAD.")
            request = parse_request(scope["path"], scope["query_string"])
            stand_in = resized_stand_in(request)
            if stand_in is not None:
                await _send_redirect(send, stand_in)
                return
            if_none_match = _header(scope, b"if-none-match")
            entry, layer = await self._lookup(request)
            if entry is None:
                await self._send_original(request, if_none_match, head_only, send)
                return
            await _send_answer(send, entry_answer(entry, MEDIA_TYPES[request.kind], layer,
                                                  if_none_match, head_only))
        except CdnError as exc:
            await _send_error(send, exc, head_only)

    def answer_from_memory(self, scope: Scope) -> Answer | None:
        """A memory hit's whole answer, built without awaiting anything; None for the rest.

        The HTTP protocol calls this before it creates an ASGI cycle
        (``api.serving.http_protocol``): a hit then costs no scope, task or send messages.
        Anything else returns None and takes the ASGI path through ``__call__``: misses,
        errors, redirects, and hits whose original is due for its revalidation (which awaits
        the store). The answer is the one
        ``__call__`` gives for the same hit (``entry_answer`` builds both).
        """
        try:
            request = parse_request(scope["path"], scope["query_string"])
        except CdnError:
            return None
        if resized_stand_in(request) is not None:
            return None
        entry = self.cache.peek(request.key(self.version))
        if entry is None or self._validated is None or request.group not in self._validated:
            return None  # with revalidation at 0 s, every hit checks the store (awaited)
        metrics.count_lookup("memory", self.cache.disk.enabled)
        return entry_answer(entry, MEDIA_TYPES[request.kind], "memory",
                            _header(scope, b"if-none-match"), scope["method"] == "HEAD")

    async def _lookup(self, request: CdnRequest) -> tuple[Entry | None, Layer]:
        """The rendition, or (None, "miss") when the original itself should be streamed."""
        key = request.key(self.version)
        entry = self.cache.peek(key)
        if entry is not None:
            await self._revalidate(request)
            metrics.count_lookup("memory", self.cache.disk.enabled)
            return entry, "memory"
        if request.size is None:
            original_kind = await self._original_kind(request)
            if original_kind == request.kind:
                return None, "miss"
            if request.kind not in FORMATS:
                raise CdnError(400, "unsupported_format",
                               f"This image is {original_kind}; ask for .{original_kind} "
                               "or convert with .jpeg, .png, .webp or .avif.")
        try:
            entry, layer = await self.cache.get_or_produce(key, lambda: self._render(request))
        except OriginalNotFound as exc:
            raise CdnError(404, "not_found", "No image at this address.") from exc
        except StoreUnavailable as exc:
            metrics.TRANSFORM_REFUSALS.labels("store_unavailable").inc()
            raise CdnError(503, "storage_unavailable", "Storage is unavailable; retry shortly.",
                           retry_after=5) from exc
        except Overloaded as exc:
            metrics.TRANSFORM_REFUSALS.labels("overloaded").inc()
            raise CdnError(503, "overloaded", "Too many transforms in progress; retry shortly.",
                           retry_after=exc.retry_after) from exc
        except TransformError as exc:
            metrics.TRANSFORM_REFUSALS.labels(exc.code).inc()
            raise CdnError(exc.status, exc.code, exc.message,
                           retry_after=5 if exc.status == 503 else None) from exc
        metrics.count_lookup(layer, self.cache.disk.enabled)
        if layer == "disk":
            await self._revalidate(request)
        return entry, layer

    async def _revalidate(self, request: CdnRequest) -> None:
        """Serve a cached rendition only if its original still exists (checked once per window)."""
        if self._validated is not None and request.group in self._validated:
            return
        if await self._head(request) is None:
            await self.purge(request.team_hash, request.uid)
            raise CdnError(404, "not_found", "No image at this address.")
        self._mark_validated(request)

    def _mark_validated(self, request: CdnRequest) -> None:
        if self._validated is not None:
            self._validated[request.group] = True

    async def _head(self, request: CdnRequest) -> Any:
        try:
            return await self.store.head(request.team_hash, request.uid)
        except StoreUnavailable as exc:
            raise CdnError(503, "storage_unavailable", "Storage is unavailable; retry shortly.",
                           retry_after=5) from exc

    async def _original_kind(self, request: CdnRequest) -> str | None:
        try:
            async with aclosing(self.store.stream(request.team_hash, request.uid)) as chunks:
                async for chunk in chunks:
                    return sniff_format(chunk[:SNIFF_BYTES])
        except OriginalNotFound as exc:
            raise CdnError(404, "not_found", "No image at this address.") from exc
        except StoreUnavailable as exc:
            raise CdnError(503, "storage_unavailable", "Storage is unavailable; retry shortly.",
                           retry_after=5) from exc
        raise CdnError(404, "not_found", "No image at this address.")

    async def _render(self, request: CdnRequest) -> bytes:
        assert self.pool is not None, "CdnOrigin.start() was not awaited"
        pool = self.pool

        async def job() -> bytes:
            original = await self.store.get(request.team_hash, request.uid)
            self._mark_validated(request)
            with metrics.TRANSFORM_SECONDS.labels(request.kind, request.size or "o").time():
                rendition = await pool.in_thread(
                    transformer.transform, original, request.size, request.kind,  # type: ignore[arg-type]
                    max_pixels=self.config.max_pixels, timeout=self.config.transform_timeout,
                )
            return rendition.data

        metrics.TRANSFORM_QUEUE.inc()
        try:
            return await pool.run(job)
        finally:
            metrics.TRANSFORM_QUEUE.dec()

    async def _send_original(self, request: CdnRequest, if_none_match: bytes | None,
                             head_only: bool, send: Send) -> None:
        """Stream the stored bytes unchanged: no decode, no re-encode, no full copy in memory."""
        stored = await self._head(request)
        if stored is None:
            raise CdnError(404, "not_found", "No image at this address.")
        self._mark_validated(request)
        etag = f'"o-{stored.etag}"'.encode()
        headers = _headers(MEDIA_TYPES[request.kind], etag, "origin")
        if is_not_modified(if_none_match, etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(stored.size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if not head_only:
            async with aclosing(self.store.stream(request.team_hash, request.uid)) as chunks:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _headers(media_type: str, etag: bytes, layer: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", media_type.encode()),
        (b"etag", etag),
        (b"cache-control", IMMUTABLE),
        (b"x-cache", layer.encode()),
        *_COMMON_HEADERS,
    ]
    if media_type == MEDIA_TYPES["svg"]:
        headers.extend(_SVG_HEADERS)
    return headers


def entry_answer(entry: Entry, media_type: str, layer: Layer, if_none_match: bytes | None,
                 head_only: bool) -> Answer:
    """200 with the rendition (headers only for HEAD), or 304 when the client has it."""
    etag = entry.etag.encode()
    headers = _headers(media_type, etag, layer)
    if is_not_modified(if_none_match, etag):
        return 304, headers, b""
    headers.append((b"content-length", str(len(entry.data)).encode()))
    return 200, headers, b"" if head_only else entry.data


async def _send_answer(send: Send, answer: Answer) -> None:
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_redirect(send: Send, location: str) -> None:
    """A permanent redirect: where a URL points never changes, so CDNs may keep it."""
    headers = [(b"location", location.encode()), (b"cache-control", IMMUTABLE),
               (b"content-length", b"0"), *_COMMON_HEADERS]
    await send({"type": "http.response.start", "status": 301, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _send_error(send: Send, exc: CdnError, head_only: bool) -> None:
    payload: dict[str, Any] = {"error": exc.code, "message": exc.message}
    headers = [(b"content-type", b"application/json"), *_COMMON_HEADERS]
    if exc.errors:
        payload["errors"] = exc.errors
    if exc.retry_after is not None:
        payload["action"] = {"type": "wait", "seconds": exc.retry_after}
        headers.append((b"retry-after", str(exc.retry_after).encode()))
        headers.append((b"cache-control", b"no-store"))
    else:
        headers.append((b"cache-control", b"public, max-age=60"))
    if exc.status == 405:
        headers.append((b"allow", b"GET, HEAD"))
    body = orjson.dumps(payload)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else body})
