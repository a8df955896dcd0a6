"""The CDN transform origin: ``GET|HEAD /{team_hash}/{uid}.{ext}?size=s|m|l``.

A request, route to bytes:

1. ``__call__`` parses the path and ``size`` (``origin.request.parse_request``); anything else
   is a fast 4xx (``origin.errors``). A path written with percent-escapes is redirected to its
   plain spelling (``%2F`` is a 404), so an image has one URL at the edge.
2. The rendition key is ``team/uid/<size>.<format>.<encoder version>``. The memory layer is
   checked synchronously; then the disk layer; then, inside ONE flight per key (coalescing),
   the cluster's shared rendition store when configured (``transformer.renditions``: a hit
   there fills disk and memory; a miss may wait for another node's lease), and otherwise the
   producer takes a slot in the bounded ``TransformPool``, reads the original from the
   originals store, and runs ``transformer.transform`` in a thread. A full pool answers 503 +
   Retry-After. What was produced goes to the shared store after the answer (write-behind).
3. No size and the original's own extension: the original bytes are streamed unchanged.
4. Responses carry exact Content-Type/Content-Length, a strong ETag (content digest),
   ``Cache-Control: public, max-age=31536000, immutable``; If-None-Match gives 304.

Most memory hits never reach ``__call__``: served by ``imgpro serve``, the HTTP protocol asks
``answer_from_memory`` first, as soon as a request's head is parsed
(``api.serving.http_protocol``), and writes the answer itself; ``origin.responses.entry_answer``
builds it on both paths.

No database is involved: the URL names the original. A deleted image disappears because its
original is gone; cached renditions (from disk or the shared store too) are re-checked against
the originals store at most every ``revalidate_seconds`` per process, and the process that
handles a delete purges at once.

Provisional renditions and the shared store: the node that made a provisional one refines it
and stores the final, which replaces the provisional in the store. A node that reads a
provisional one from the store serves it, leaves the final encode to its maker for
``shared_refine_grace`` seconds, then (on a hit) looks in the store again and takes the final
from there, refining it itself only if it is still not there. So the expensive encode runs
once per cluster while every node is up, and still runs if the maker went away.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures.process import BrokenProcessPool
from contextlib import aclosing

from cachetools import TTLCache

import transformer
from cache import Entry, Layer, RenditionCache
from transformer import FORMATS, MEDIA_TYPES, SNIFF_BYTES, TransformError, sniff_format
from transformer.origin import metrics
from transformer.origin.config import OriginConfig
from transformer.origin.errors import (
    CdnError,
    ImageNotFound,
    MethodNotAllowed,
    NotConvertible,
    StorageUnavailable,
    TransformQueueFull,
    TransformRefused,
)
from transformer.origin.http_cache import is_not_modified
from transformer.origin.pool import Overloaded, TransformPool
from transformer.origin.refine import LaneProcess, RefineLane
from transformer.origin.request import (
    CdnRequest,
    parse_request,
    resized_stand_in,
    unescaped_location,
)
from transformer.origin.responses import (
    Answer,
    Receive,
    Scope,
    Send,
    entry_answer,
    error_answer,
    header,
    image_headers,
    provisional_cache_control,
    redirect_answer,
    send_answer,
)
from transformer.originals import OriginalNotFound, OriginalsStore, StoredOriginal, StoreUnavailable

log = logging.getLogger(__name__)

PROVISIONAL_FORMATS = transformer.REFINABLE_FORMATS
"""Formats whose final setting is not their fast one (JPEG, WebP, AVIF; docs/bench-quality.md
has the bytes and encode times): a miss gets the fast setting, answered provisional, and the
refine lane re-encodes it. PNG is lossless at one setting, so its misses are final at once."""
REFINE_TIMEOUT_FACTOR = 4
"""A final encode may take this many times ``transform_timeout``: it has no client waiting."""
DISK_RESCAN_LIMIT = 10_000
"""At most this many provisional entries are picked up from the disk cache at start-up."""


class CdnOrigin:
    """The ASGI app for CDN paths; ``start``/``close`` run in the host app's lifespan."""

    def __init__(self, store: OriginalsStore, cache: RenditionCache, config: OriginConfig) -> None:
        self.store = store
        self.cache = cache
        self.config = config
        self.pool: TransformPool | None = None
        self.lane: RefineLane | None = None
        self._lane_process = LaneProcess()
        self._provisional = provisional_cache_control(config.provisional_max_age)
        self.version = transformer.ENCODER_SETTINGS_VERSION
        # Groups whose original was seen in the store recently: hits in this window skip a check.
        self._validated: TTLCache[str, bool] | None = (
            TTLCache(maxsize=200_000, ttl=config.revalidate_seconds)
            if config.revalidate_seconds > 0 else None
        )
        # Provisional renditions read from the shared store: their maker refines them first.
        self._deferred: TTLCache[str, bool] | None = (
            TTLCache(maxsize=100_000, ttl=config.shared_refine_grace)
            if cache.shared is not None and config.shared_refine_grace > 0 else None
        )

    async def start(self) -> None:
        transformer.configure()
        pool = self.pool = TransformPool(self.config.threads, self.config.queue_limit)
        await self.cache.start()
        if self.config.refine and self.cache.enabled:  # with no cache there is nothing to swap
            self.lane = RefineLane(self.config.refine_queue, pool.wait_for_idle_thread,
                                   self._refine)
            self.lane.start()
            for key in await self.cache.disk.provisional_keys(DISK_RESCAN_LIMIT):
                self.lane.offer(key)  # left provisional by an earlier run of this node

    async def close(self) -> None:
        if self.lane is not None:
            await self.lane.close()
        self._lane_process.close()
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
                raise MethodNotAllowed()
            raw_path = scope.get("raw_path")
            if raw_path is not None and b"%" in raw_path:  # one spelling per image URL
                location = unescaped_location(scope["path"], raw_path, scope["query_string"])
                await send_answer(send, redirect_answer(location))
                return
            request = parse_request(scope["path"], scope["query_string"])
            stand_in = resized_stand_in(request)
            if stand_in is not None:
                await send_answer(send, redirect_answer(stand_in))
                return
            if_none_match = header(scope, b"if-none-match")
            entry, layer = await self._lookup(request)
            if entry is None:
                await self._send_original(request, if_none_match, head_only, send)
                return
            await send_answer(send, entry_answer(entry, MEDIA_TYPES[request.kind], layer,
                                                 if_none_match, head_only, self._provisional))
        except CdnError as exc:
            await send_answer(send, error_answer(exc, head_only))

    def answer_from_memory(self, scope: Scope) -> Answer | None:
        """A memory hit's whole answer, built without awaiting anything; None for the rest.

        The HTTP protocol calls this before it creates an ASGI cycle
        (``api.serving.http_protocol``): a hit then costs no scope, task or send messages.
        Anything else returns None and takes the ASGI path through ``__call__``: misses,
        errors, redirects, and hits whose original is due for its revalidation (which awaits
        the store). The answer is the one ``__call__`` gives for the same hit (``entry_answer``
        builds both).
        """
        try:
            request = parse_request(scope["path"], scope["query_string"])
        except CdnError:
            return None
        if resized_stand_in(request) is not None:
            return None
        key = request.key(self.version)
        entry = self.cache.peek(key)
        if entry is None or self._validated is None or request.group not in self._validated:
            return None  # with revalidation at 0 s, every hit checks the store (awaited)
        metrics.count_lookup("memory", self.cache.disk.enabled)
        if not entry.final:
            self._offer(key)
        return entry_answer(entry, MEDIA_TYPES[request.kind], "memory",
                            header(scope, b"if-none-match"), scope["method"] == "HEAD",
                            self._provisional)

    async def _lookup(self, request: CdnRequest) -> tuple[Entry | None, Layer]:
        """The rendition, or (None, "miss") when the original itself should be streamed."""
        key = request.key(self.version)
        entry = self.cache.peek(key)
        if entry is not None:
            await self._revalidate(request)
            metrics.count_lookup("memory", self.cache.disk.enabled)
            if not entry.final:
                self._offer(key)
            return entry, "memory"
        if request.size is None:
            original_kind = await self._original_kind(request)
            if original_kind == request.kind:
                return None, "miss"
            if request.kind not in FORMATS:
                raise NotConvertible(original_kind)
        try:
            entry, layer = await self.cache.get_or_produce(key, lambda: self._render(request))
        except OriginalNotFound as exc:
            raise ImageNotFound() from exc
        except StoreUnavailable as exc:
            metrics.TRANSFORM_REFUSALS.labels("store_unavailable").inc()
            raise StorageUnavailable() from exc
        except Overloaded as exc:
            metrics.TRANSFORM_REFUSALS.labels("overloaded").inc()
            raise TransformQueueFull(exc.retry_after) from exc
        except TransformError as exc:
            metrics.TRANSFORM_REFUSALS.labels(exc.code).inc()
            raise TransformRefused(exc) from exc
        metrics.count_lookup(layer, self.cache.disk.enabled, self.cache.shared is not None)
        if layer in ("disk", "store") or (layer == "coalesced" and self.cache.shared is not None):
            await self._revalidate(request)  # not read from the originals store just now
        if not entry.final:
            if layer == "store" and self._deferred is not None:
                self._deferred[key] = True  # its maker refines it; we pick up the final later
            else:
                self._offer(key)
        return entry, layer

    def _offer(self, key: str) -> None:
        """A provisional entry was served: make sure a final one is on its way."""
        if self.lane is not None and (self._deferred is None or key not in self._deferred):
            self.lane.offer(key)

    async def _revalidate(self, request: CdnRequest) -> None:
        """Serve a cached rendition only if its original still exists (checked once per window)."""
        if self._validated is not None and request.group in self._validated:
            return
        if await self._head(request) is None:
            await self.purge(request.team_hash, request.uid)
            raise ImageNotFound()
        self._mark_validated(request)

    def _mark_validated(self, request: CdnRequest) -> None:
        if self._validated is not None:
            self._validated[request.group] = True

    async def _head(self, request: CdnRequest) -> StoredOriginal | None:
        try:
            return await self.store.head(request.team_hash, request.uid)
        except StoreUnavailable as exc:
            raise StorageUnavailable() from exc

    async def _original_kind(self, request: CdnRequest) -> str | None:
        try:
            async with aclosing(self.store.stream(request.team_hash, request.uid)) as chunks:
                async for chunk in chunks:
                    return sniff_format(chunk[:SNIFF_BYTES])
        except OriginalNotFound as exc:
            raise ImageNotFound() from exc
        except StoreUnavailable as exc:
            raise StorageUnavailable() from exc
        raise ImageNotFound()

    async def _render(self, request: CdnRequest) -> Entry:
        """A miss: the fast setting for the formats refined later, else the final one."""
        assert self.pool is not None, "CdnOrigin.start() was not awaited"
        pool = self.pool
        provisional = request.kind in PROVISIONAL_FORMATS

        async def job() -> Entry:
            original = await self.store.get(request.team_hash, request.uid)
            self._mark_validated(request)
            with metrics.TRANSFORM_SECONDS.labels(request.kind, request.size or "o").time():
                rendition = await pool.in_thread(
                    transformer.transform, original, request.size, request.kind,  # type: ignore[arg-type]
                    max_pixels=self.config.max_pixels, timeout=self.config.transform_timeout,
                    effort="fast" if provisional else "final",
                )
            # Refine off: the fast encode is the final answer (immutable), as before the lane.
            return Entry.of(rendition.data, final=not (provisional and self.config.refine))

        metrics.TRANSFORM_QUEUE.inc()
        try:
            return await pool.run(job)
        finally:
            metrics.TRANSFORM_QUEUE.dec()

    async def _refine(self, key: str) -> None:
        """The lane's job: re-encode a provisional rendition at the final setting, swap it in."""
        parsed = CdnRequest.from_key(key)
        current = self.cache.peek(key) or await self.cache.disk.get(key)
        if parsed is None or parsed[1] != self.version or current is None or current.final:
            metrics.REFINE_DONE.labels("gone").inc()  # evicted, purged, refined, or stale
            return
        request = parsed[0]
        since = self.cache.epoch()
        if self.cache.shared is not None:  # another node may have refined it already
            stored = await self.cache.shared.fetch(key)
            if stored is not None and stored.final:
                replaced = self.cache.replace(key, stored, since=since, share=False)
                metrics.REFINE_DONE.labels("from_store" if replaced else "gone").inc()
                return
        try:
            original = await self.store.get(request.team_hash, request.uid)
            with metrics.REFINE_SECONDS.labels(request.kind, request.size or "o").time():
                data = await self._lane_process.encode(
                    original, request.size, request.kind,  # type: ignore[arg-type]
                    self.config.max_pixels, self.config.transform_timeout * REFINE_TIMEOUT_FACTOR)
        except OriginalNotFound:
            metrics.REFINE_DONE.labels("gone").inc()
            return
        except (StoreUnavailable, TransformError, BrokenProcessPool, TimeoutError) as exc:
            # Expected weather, not a bug: the provisional entry stays and is offered again on
            # its next hit.
            log.warning("refining %s failed: %s", key, exc or exc.__class__.__name__)
            metrics.REFINE_DONE.labels("failed").inc()
            return
        replaced = self.cache.replace(key, Entry.of(data), since=since)
        metrics.REFINE_DONE.labels("refined" if replaced else "gone").inc()

    async def _send_original(self, request: CdnRequest, if_none_match: bytes | None,
                             head_only: bool, send: Send) -> None:
        """Stream the stored bytes unchanged: no decode, no re-encode, no full copy in memory."""
        stored = await self._head(request)
        if stored is None:
            raise ImageNotFound()
        self._mark_validated(request)
        etag = f'"o-{stored.etag}"'.encode()
        headers = image_headers(MEDIA_TYPES[request.kind], etag, "origin")
        if is_not_modified(if_none_match, etag):
            await send_answer(send, (304, headers, b""))
            return
        headers.append((b"content-length", str(stored.size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if not head_only:
            async with aclosing(self.store.stream(request.team_hash, request.uid)) as chunks:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
