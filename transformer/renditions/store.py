"""The cluster's rendition store in an S3 bucket: the third cache layer (``cache.SharedLayer``).

Why: behind a load balancer every node meets every rendition cold, so N nodes transform each
rendition up to N times, and a node restarted on a fresh disk transforms its share again. Here
a rendition is transformed once per cluster and every other node reads it (one GET).

Layout: ``<prefix>/<team_hash>/<uid>/<size>.<format>.<encoder settings version>``, the cache
key under the prefix, so all renditions of one image share one prefix (purging it is one
listing and one batch delete) and a new encoder-settings version simply stops using the old
objects (a bucket lifecycle rule expires them). Object metadata: ``digest`` (the BLAKE2b
digest that is also the HTTP ETag, re-checked on every read) and ``state``: ``final``,
``provisional`` (a fast encode that a final one will replace), or ``pending`` (a lease, with
``lease-until``: an empty object saying "a node is transforming this").

The lease is a conditional write: ``PutObject`` with ``If-None-Match: *`` creates the pending
object only if the key is free (S3 has offered it since August 2024; moto implements it). The
node that wins transforms; the others poll the key with a growing interval until the
rendition is there, the pending object is gone (its holder failed) or ``lease_seconds`` have
passed, then transform themselves. Nothing depends on the lease for correctness: at worst two
nodes transform and the second write loses. Every write is conditional on what this node last
saw at the key (``If-Match`` its ETag, or ``If-None-Match: *`` when it saw nothing), so a late
write never overwrites a newer object, and a write after a purge (the object it expected is
gone) is refused instead of bringing the deleted image's rendition back.

Failure: the store is a cache. Requests have a short timeout and no retry; a failed lookup is
a miss and a failed write is dropped (both counted, logged); a circuit breaker stops using an
endpoint that keeps failing and probes it again by itself (``breaker``). Writes happen after
the answer, in a bounded queue (``write_behind``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError
from cachetools import TTLCache

from cache import Entry, digest_of
from transformer import MEDIA_TYPES
from transformer.originals import StoreUnavailable
from transformer.originals.s3 import error_code, prepare_bucket
from transformer.originals.s3_client import S3Client
from transformer.renditions import metrics
from transformer.renditions.breaker import STATE_VALUES, CircuitBreaker, State
from transformer.renditions.config import RenditionStoreConfig
from transformer.renditions.write_behind import WriteBehind

log = logging.getLogger("imgpro.renditions")

T = TypeVar("T")
ABSENT = ""
"""What this node last saw at a key: no object (its next write is ``If-None-Match: *``)."""
POLL_FIRST = 0.05
POLL_MAX = 0.5
"""A waiting node polls the leased key at 50 ms, doubling up to 500 ms."""
WRITE_CONCURRENCY = 8
SHUTDOWN_WRITE_SECONDS = 5.0
"""A graceful stop gives pending writes this long."""
EXPECTED_KEYS = 20_000
EXPECTED_SECONDS = 900.0
"""How many keys, and for how long, a node remembers the ETag it last saw: the span from a
lookup to its write, or from a provisional write to its refined replacement."""
DROP_LOG_SECONDS = 10.0
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MISSING = {"NoSuchKey", "404", "NotFound"}
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class _Skipped(Exception):
    """The breaker is open: the request did not go out."""


class _Failed(Exception):
    """The request failed (unreachable, timed out, a server error, refused access)."""


class _Refused(Exception):
    """The store answered no: the object is missing or a condition did not hold."""

    def __init__(self, missing: bool) -> None:
        super().__init__("missing" if missing else "condition failed")
        self.missing = missing


@dataclass(frozen=True, slots=True)
class _Seen:
    """One GET's outcome: a rendition, a pending lease, a damaged object, or nothing."""

    entry: Entry | None
    etag: str | None
    lease_until: float | None = None


class S3RenditionStore:
    """Renditions shared by every node in ``s3://bucket/prefix``; implements ``SharedLayer``."""

    def __init__(self, config: RenditionStoreConfig, *,
                 clock: Callable[[], float] = time.time) -> None:
        parsed = urlparse(config.url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {config.url!r}")
        self.config = config
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self._clock = clock
        self._client = S3Client(endpoint_url=config.endpoint_url, max_connections=64,
                                connect_timeout=config.timeout, read_timeout=config.timeout,
                                max_attempts=1)  # a cache read that fails is a miss: no retry
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_seconds,
                                      on_change=self._breaker_changed)
        metrics.BREAKER_STATE.set(0)
        self._writer = WriteBehind(config.write_queue, WRITE_CONCURRENCY)
        self._leasing = config.conditional and config.lease_seconds > 0
        # key -> (ETag this node last saw there or wrote, sequence number of that event)
        self._expected: TTLCache[str, tuple[str, int]] = TTLCache(EXPECTED_KEYS,
                                                                  EXPECTED_SECONDS)
        self._seq = 0
        self._leases: dict[str, str] = {}  # key -> ETag of the pending object this node holds
        self._dropped = 0
        self._drop_logged = 0.0

    # -- layout -----------------------------------------------------------------------------

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def image_prefix(self, team_hash: str, uid: str) -> str:
        """Where every rendition of one image lives (what a purge lists)."""
        if not _NAME.match(team_hash) or not _NAME.match(uid):
            raise ValueError(f"not an image: {team_hash}/{uid}")
        return self.object_key(f"{team_hash}/{uid}/")

    # -- SharedLayer ------------------------------------------------------------------------

    async def lookup(self, key: str) -> Entry | None:
        try:
            seen = await self._get(key)
        except _Skipped:
            metrics.LOOKUPS.labels("skipped").inc()
            return None
        except _Failed:
            metrics.LOOKUPS.labels("error").inc()
            return None
        if seen.entry is not None:
            metrics.LOOKUPS.labels("hit").inc()
            return seen.entry
        entry = await self._lease_or_wait(key, seen) if self._leasing else None
        metrics.LOOKUPS.labels("hit" if entry is not None else "miss").inc()
        return entry

    async def fetch(self, key: str) -> Entry | None:
        try:
            return (await self._get(key)).entry
        except (_Skipped, _Failed):
            return None

    def save(self, key: str, entry: Entry) -> None:
        if not self._writer.submit(key, lambda: self._put(key, entry)):
            self._leases.pop(key, None)  # its pending object expires by itself
            metrics.WRITES.labels("dropped").inc()
            self._log_drop()

    def abandon(self, key: str) -> None:
        if key in self._leases:
            self._writer.submit(key, lambda: self._release(key))

    # -- purge, start-up, shutdown -----------------------------------------------------------

    async def purge_image(self, team_hash: str, uid: str) -> int:
        """Delete every stored rendition of one image; returns how many objects went.

        Raises StoreUnavailable when that could not be done (the API's delete path then leaves
        the image for the retention sweeper to retry)."""
        prefix = self.image_prefix(team_hash, uid)
        try:
            keys = await self._list(prefix)
            for start in range(0, len(keys), 1000):
                doomed = {"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                          "Quiet": True}
                answer = await self._call("delete", lambda s3: s3.delete_objects(
                    Bucket=self.bucket, Delete=doomed))  # noqa: B023 - awaited at once
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise StoreUnavailable(f"rendition store refused to delete {first}")
        except (_Skipped, _Failed) as exc:
            raise StoreUnavailable(
                f"rendition store unavailable: renditions of {team_hash}/{uid} not purged "
                f"({'circuit open' if isinstance(exc, _Skipped) else exc})") from exc
        except _Refused:
            return 0
        metrics.PURGED_OBJECTS.inc(len(keys))
        return len(keys)

    async def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        options: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            answer = await self._call("list", lambda s3: s3.list_objects_v2(**options))
            keys += [item["Key"] for item in answer.get("Contents", [])]
            if not answer.get("IsTruncated"):
                return keys
            options["ContinuationToken"] = answer["NextContinuationToken"]

    async def prepare(self, *, create_missing: bool) -> None:
        """The bucket exists (created when allowed): BucketMissing or StoreUnavailable."""
        await prepare_bucket(self._client, self.bucket, create_missing=create_missing)

    async def close(self) -> None:
        await self._writer.close(SHUTDOWN_WRITE_SECONDS)
        await self._client.close()

    # -- requests ---------------------------------------------------------------------------

    async def _get(self, key: str) -> _Seen:
        started = self._seq

        async def get(s3: Any) -> tuple[dict[str, Any], bytes]:
            answer = await s3.get_object(Bucket=self.bucket, Key=self.object_key(key))
            async with answer["Body"] as body:
                return answer, bytes(await body.read())

        try:
            answer, data = await self._call("get", get)
        except _Refused:
            self._observe(key, ABSENT, started)
            return _Seen(None, None)
        etag = str(answer["ETag"])
        self._observe(key, etag, started)
        meta = answer.get("Metadata") or {}
        state = meta.get("state")
        if state == "pending":
            try:
                until = float(meta.get("lease-until", "0"))
            except ValueError:
                until = 0.0
            return _Seen(None, etag, until)
        if state in ("final", "provisional") and meta.get("digest") == digest_of(data):
            return _Seen(Entry(data, meta["digest"], state == "final"), etag)
        log.warning("rendition store: damaged object %s ignored", self.object_key(key))
        return _Seen(None, etag)  # overwritten by the next write (If-Match its ETag)

    async def _lease_or_wait(self, key: str, seen: _Seen) -> Entry | None:
        """No rendition stored: take the lease (None: transform here) or wait for its holder."""
        if seen.lease_until is None or seen.lease_until <= self._clock():
            if not await self._take_lease(key, over=seen.etag):
                return None
            until = self._clock() + self.config.lease_seconds
        else:
            until = seen.lease_until
        return await self._wait(key, until)

    async def _take_lease(self, key: str, over: str | None) -> bool:
        """False when this node holds the lease now or could not ask (it transforms); True
        when another node holds it (this one waits)."""
        until = self._clock() + self.config.lease_seconds
        condition = {"IfMatch": over} if over else {"IfNoneMatch": "*"}
        try:
            answer = await self._call("lease", lambda s3: s3.put_object(
                Bucket=self.bucket, Key=self.object_key(key), Body=b"",
                Metadata={"state": "pending", "lease-until": f"{until:.3f}"}, **condition))
        except (_Skipped, _Failed):
            return False
        except _Refused:
            metrics.LEASES.labels("lost").inc()
            return True
        etag = str(answer["ETag"])
        self._wrote(key, etag)
        self._leases[key] = etag
        metrics.LEASES.labels("acquired").inc()
        return False

    async def _wait(self, key: str, until: float) -> Entry | None:
        """Poll ``key`` until the lease holder's rendition is there, or a bounded time."""
        started = time.monotonic()
        bound = min(until - self._clock(), self.config.lease_seconds)
        delay = POLL_FIRST
        entry: Entry | None = None
        result = "timeout"
        while (remaining := bound - (time.monotonic() - started)) > 0:
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, POLL_MAX)
            try:
                seen = await self._get(key)
            except (_Skipped, _Failed):
                result = "failed"
                break
            if seen.entry is not None:
                entry, result = seen.entry, "served"
                break
            if seen.lease_until is None:
                result = "gone"  # its holder gave up (or the image was purged)
                break
        metrics.LEASE_WAITS.labels(result).inc()
        metrics.LEASE_WAIT_SECONDS.observe(time.monotonic() - started)
        return entry

    async def _put(self, key: str, entry: Entry) -> None:
        self._leases.pop(key, None)  # this write replaces the pending object, if any
        condition = self._condition(key)
        fmt = key.rpartition("/")[2].split(".")[1:2]
        media_type = MEDIA_TYPES.get(fmt[0] if fmt else "", "application/octet-stream")
        metadata = {"digest": entry.digest, "state": "final" if entry.final else "provisional"}
        try:
            answer = await self._call("put", lambda s3: s3.put_object(
                Bucket=self.bucket, Key=self.object_key(key), Body=entry.data,
                ContentType=media_type, Metadata=metadata, **condition))
        except _Skipped:
            metrics.WRITES.labels("skipped").inc()
            return
        except _Failed:
            metrics.WRITES.labels("failed").inc()
            return
        except _Refused:
            metrics.WRITES.labels("conflict").inc()
            self._expected.pop(key, None)  # someone else's object now: we know not which
            return
        metrics.WRITES.labels("stored").inc()
        metrics.STORED_BYTES.inc(len(entry.data))
        self._wrote(key, str(answer["ETag"]))

    async def _release(self, key: str) -> None:
        etag = self._leases.pop(key, None)
        if etag is None:
            return
        try:
            await self._call("delete", lambda s3: s3.delete_object(
                Bucket=self.bucket, Key=self.object_key(key), IfMatch=etag))
        except (_Skipped, _Failed, _Refused):
            return  # the pending object expires by itself
        metrics.LEASES.labels("released").inc()
        self._wrote(key, ABSENT)

    def _condition(self, key: str) -> dict[str, str]:
        known = self._expected.get(key)
        if not self.config.conditional or known is None:
            return {}
        return {"IfNoneMatch": "*"} if known[0] == ABSENT else {"IfMatch": known[0]}

    def _observe(self, key: str, etag: str, started: int) -> None:
        """What a read saw, unless one of our writes to the key landed while it was out."""
        known = self._expected.get(key)
        if known is None or known[1] <= started:
            self._seq += 1
            self._expected[key] = (etag, self._seq)

    def _wrote(self, key: str, etag: str) -> None:
        self._seq += 1
        self._expected[key] = (etag, self._seq)

    async def _call(self, op: str, call: Callable[[Any], Awaitable[T]]) -> T:
        """One request through the breaker, with the timeout and the metrics."""
        if not self.breaker.allow():
            raise _Skipped()
        try:
            async with self._timed(op):
                s3 = await self._client.get()
                result = await call(s3)
        except ClientError as exc:
            code = error_code(exc)
            if code in _MISSING or code in _CONFLICT:
                self.breaker.success()
                raise _Refused(missing=code in _MISSING) from exc
            self._failed(op, exc)
            raise _Failed(str(exc)) from exc
        except (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError) as exc:
            self._failed(op, exc)
            raise _Failed(str(exc) or exc.__class__.__name__) from exc
        self.breaker.success()
        return result

    @contextlib.asynccontextmanager
    async def _timed(self, op: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout):
                yield
        finally:
            metrics.REQUEST_SECONDS.labels(op).observe(time.perf_counter() - started)

    def _failed(self, op: str, exc: BaseException) -> None:
        metrics.ERRORS.labels(op).inc()
        log.warning("rendition store %s failed: %s", op, exc or exc.__class__.__name__)
        self.breaker.failure()

    def _breaker_changed(self, state: State) -> None:
        metrics.BREAKER_STATE.set(STATE_VALUES[state])
        metrics.BREAKER_TRANSITIONS.labels(state).inc()
        if state == "open":
            log.warning("rendition store circuit open: not used for %g s, then probed",
                        self.config.breaker_seconds)
        elif state == "closed":
            log.info("rendition store circuit closed: in use again")

    def _log_drop(self) -> None:
        self._dropped += 1
        now = time.monotonic()
        if now - self._drop_logged >= DROP_LOG_SECONDS:
            log.warning("rendition store: write queue full, %d writes dropped", self._dropped)
            self._dropped, self._drop_logged = 0, now

