"""The rendition store's settings as plain values: ``api.serving.app`` builds them from
``api.settings`` (where every default is defined, once) and passes them in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RenditionStoreConfig:
    url: str
    """``s3://bucket/prefix``: where the cluster's renditions live."""
    endpoint_url: str | None
    """S3-compatible endpoint (None: AWS); the originals store's by default."""
    timeout: float
    """Seconds one store request may take (connect, read, the whole call) before it counts
    as failed: a lookup that fails is a miss, a write that fails is dropped."""
    conditional: bool
    """Use S3 conditional writes (``If-None-Match: *``, ``If-Match``): the lease, and writes
    that never overwrite a newer object or bring back a purged one."""
    lease_seconds: float
    """How long a lease holds, and the most another node waits for its rendition (0: no
    lease, every node that misses transforms)."""
    breaker_failures: int
    """Failed requests in a row that open the circuit breaker."""
    breaker_seconds: float
    """How long the open breaker keeps the store unused before one probe request."""
    write_queue: int
    """Writes that may wait per process; beyond it new ones are dropped (counted)."""
