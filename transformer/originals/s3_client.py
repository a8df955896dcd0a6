"""One long-lived aiobotocore S3 client per store and process, created on first use.

Shared by the originals store (``transformer.originals.s3``) and the rendition store
(``transformer.renditions``): the same endpoint setting (``IMGPRO_S3_ENDPOINT_URL``), the same
credentials and region (the usual ``AWS_*`` variables, read by botocore), botocore's
"standard" retry mode. Each store has its own client because they want different timeouts and
attempts: an original must be read if at all possible, while a rendition store is a cache whose
failed read is only a miss, so it gives up fast.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session


class S3Client:
    def __init__(self, *, endpoint_url: str | None, max_connections: int,
                 connect_timeout: float, read_timeout: float,
                 max_attempts: int | None) -> None:
        self.endpoint_url = endpoint_url
        self._config = AioConfig(
            max_pool_connections=max_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Without a count here botocore takes AWS_MAX_ATTEMPTS (total attempts, default 3).
            retries={"mode": "standard"} if max_attempts is None
            else {"mode": "standard", "total_max_attempts": max_attempts},
        )
        self._client: Any = None
        self._stack: AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        """The client, created on first use (inside the running event loop)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    stack = AsyncExitStack()
                    self._client = await stack.enter_async_context(
                        get_session().create_client("s3", endpoint_url=self.endpoint_url,
                                                    config=self._config)
                    )
                    self._stack = stack
        return self._client

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None
