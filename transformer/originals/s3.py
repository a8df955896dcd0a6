"""Originals in an S3-compatible bucket, through one long-lived aiobotocore client per process.

``IMGPRO_STORAGE_URL=s3://bucket/prefix`` selects it (endpoint from ``IMGPRO_S3_ENDPOINT_URL``,
region and credentials from the usual AWS variables). botocore's "standard" retry mode gives
retries with exponential backoff on throttling, 5xx and refused connections (3 attempts in
all, or ``AWS_MAX_ATTEMPTS``); what still fails becomes
``StoreUnavailable`` (the servers answer 503 + Retry-After), and a missing key becomes
``OriginalNotFound`` (404) — never a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from transformer.originals.protocol import (
    BucketMissing,
    ListedOriginal,
    OriginalNotFound,
    StoredOriginal,
    StoreUnavailable,
    object_key,
    valid_name,
)
from transformer.originals.s3_client import S3Client

PART_SIZE = 8 * 1024 * 1024
"""Multipart chunk: originals above this go up in parts (S3's minimum part is 5 MiB)."""
CHUNK_SIZE = 256 * 1024
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
# A missing bucket is a broken deployment, not a missing image: 503 (never a cacheable 404).
_NO_BUCKET = {"NoSuchBucket", "404", "NotFound"}
_BUCKET_RACE = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


class S3OriginalsStore:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 max_connections: int = 64, connect_timeout: float = 5,
                 read_timeout: float = 30, max_attempts: int | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._client = S3Client(endpoint_url=endpoint_url, max_connections=max_connections,
                                connect_timeout=connect_timeout, read_timeout=read_timeout,
                                max_attempts=max_attempts)

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None) -> S3OriginalsStore:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        return cls(parsed.netloc, parsed.path, endpoint_url=endpoint_url)

    def _key(self, team_hash: str, uid: str) -> str:
        key = object_key(team_hash, uid)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _s3(self) -> Any:
        """The process's one client, created on first use (inside the running event loop)."""
        return await self._client.get()

    async def put(self, team_hash: str, uid: str, data: bytes | AsyncIterable[bytes]) -> int:
        key = self._key(team_hash, uid)
        with _mapped_errors(key):
            s3 = await self._s3()
            if isinstance(data, (bytes, bytearray, memoryview)):
                if len(data) <= PART_SIZE:
                    await s3.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
                    return len(data)
                data = _as_chunks(bytes(data))
            # A stream that fits in one part goes up as one PUT, like bytes of that size.
            chunks = aiter(data)
            first = bytearray()
            async for chunk in chunks:
                first += chunk
                if len(first) > PART_SIZE:
                    break
            else:
                await s3.put_object(Bucket=self.bucket, Key=key, Body=bytes(first))
                return len(first)
            return await self._put_multipart(s3, key, _after(first, chunks))

    async def _put_multipart(self, s3: Any, key: str, chunks: AsyncIterable[bytes]) -> int:
        upload = await s3.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        total = 0
        buffer = bytearray()
        try:
            async for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                while len(buffer) >= PART_SIZE:
                    await self._upload_part(s3, key, upload_id, parts, bytes(buffer[:PART_SIZE]))
                    del buffer[:PART_SIZE]
            if buffer or not parts:
                await self._upload_part(s3, key, upload_id, parts, bytes(buffer))
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            await asyncio.shield(
                s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            )
            raise
        return total

    async def _upload_part(self, s3: Any, key: str, upload_id: str,
                           parts: list[dict[str, Any]], body: bytes) -> None:
        number = len(parts) + 1
        answer = await s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                      PartNumber=number, Body=body)
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def get(self, team_hash: str, uid: str) -> bytes:
        key = self._key(team_hash, uid)
        with _mapped_errors(key):
            s3 = await self._s3()
            answer = await s3.get_object(Bucket=self.bucket, Key=key)
            async with answer["Body"] as body:
                return bytes(await body.read())

    async def stream(self, team_hash: str, uid: str) -> AsyncGenerator[bytes, None]:
        key = self._key(team_hash, uid)
        with _mapped_errors(key):
            s3 = await self._s3()
            answer = await s3.get_object(Bucket=self.bucket, Key=key)
            async with answer["Body"] as body:
                while chunk := await body.read(CHUNK_SIZE):
                    yield chunk

    async def head(self, team_hash: str, uid: str) -> StoredOriginal | None:
        try:
            key = self._key(team_hash, uid)
            with _mapped_errors(key):
                s3 = await self._s3()
                answer = await s3.head_object(Bucket=self.bucket, Key=key)
        except OriginalNotFound:
            return None
        return StoredOriginal(size=int(answer["ContentLength"]), etag=answer["ETag"].strip('"'))

    async def delete(self, team_hash: str, uid: str) -> bool:
        if await self.head(team_hash, uid) is None:
            return False
        key = self._key(team_hash, uid)
        with _mapped_errors(key):
            s3 = await self._s3()
            await s3.delete_object(Bucket=self.bucket, Key=key)
        return True

    async def list_teams(self) -> AsyncIterator[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        with _mapped_errors(base or self.bucket):
            s3 = await self._s3()
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/")
            async for page in pages:  # S3 lists keys (and these prefixes) in byte order
                for common in page.get("CommonPrefixes", ()):
                    name = str(common["Prefix"])[len(base):].rstrip("/")
                    if valid_name(name):
                        yield name

    async def list_originals(self, team_hash: str) -> AsyncIterator[ListedOriginal]:
        if not valid_name(team_hash):
            return
        base = f"{self.prefix}/{team_hash}/" if self.prefix else f"{team_hash}/"
        with _mapped_errors(base):
            s3 = await self._s3()
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base)
            async for page in pages:
                for item in page.get("Contents", ()):
                    uid = str(item["Key"])[len(base):]
                    if valid_name(uid):
                        yield ListedOriginal(uid, item["LastModified"].timestamp())

    async def ensure_bucket(self) -> None:
        """Create the bucket if missing (tests and first start against an empty endpoint)."""
        await self.prepare(create_missing=True)

    async def prepare(self, *, create_missing: bool) -> None:
        """Check at start-up that the bucket exists, creating it when allowed.

        Raises BucketMissing (a configuration error: the process should not start) or
        StoreUnavailable (the endpoint is down: the process may start and answer 503 until
        it is back). A 403 on the check is not an error: least-privilege credentials often
        may read and write objects but not look at the bucket itself.
        """
        await prepare_bucket(self._client, self.bucket, create_missing=create_missing)

    async def close(self) -> None:
        await self._client.close()


async def prepare_bucket(client: S3Client, bucket: str, *, create_missing: bool) -> None:
    """``prepare`` of any store that keeps objects in ``bucket`` (originals, renditions)."""
    with _mapped_errors(bucket):
        s3 = await client.get()
        try:
            await s3.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            code = error_code(exc)
            if code in ("403", "AccessDenied"):
                return
            if code not in _NO_BUCKET:
                raise
        if not create_missing:
            where = client.endpoint_url or "AWS"
            raise BucketMissing(
                f"S3 bucket {bucket!r} does not exist at {where}: create it, or set "
                "IMGPRO_S3_CREATE_BUCKET=true to let imgpro create it at start-up"
            )
        region = s3.meta.region_name
        options: dict[str, Any] = {}
        if region and region != "us-east-1":  # us-east-1 refuses an explicit constraint
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await s3.create_bucket(Bucket=bucket, **options)
        except ClientError as exc:
            if error_code(exc) not in _BUCKET_RACE:  # another worker or node was first
                raise


async def _after(first: bytearray, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield bytes(first)
    async for chunk in rest:
        yield chunk


async def _as_chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), PART_SIZE):
        yield data[start : start + PART_SIZE]


@contextmanager
def _mapped_errors(key: str) -> Iterator[None]:
    """botocore's and aiohttp's exceptions -> OriginalNotFound / StoreUnavailable."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in _NOT_FOUND:
            raise OriginalNotFound(key) from exc
        raise StoreUnavailable(f"S3 error {code} for {key}") from exc
    except (TimeoutError, BotoCoreError, aiohttp.ClientError, OSError) as exc:
        raise StoreUnavailable(f"S3 unreachable for {key}: {exc}") from exc


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
