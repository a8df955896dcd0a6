"""The one typed settings object, read once at startup from ``IMGPRO_*`` variables.

Every limit and switch the service has is a field here with its documented default; the
README's configuration table lists the same names. CLI flags of ``imgpro serve`` override the
environment by setting the same variables, so ``--workers N`` child processes see them too.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.rules.bind_address import parse_bind_address
from api.rules.client_ip import parse_trusted_proxies
from api.rules.smtp_relay import DEFAULT_MAIL_FROM, parse_smtp_url

Role = Literal["all", "api", "cdn"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMGPRO_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("./imgpro-data")
    workers: int = Field(1, ge=1)
    worker_sockets: Literal["own", "shared"] = "own"
    """With several workers: ``own`` gives each its listening socket in one SO_REUSEPORT group
    (Linux; the kernel spreads connections), ``shared`` one socket for all (uvicorn's way)."""
    role: Role = "all"

    public_url: str | None = None
    """Base of each media's ``url`` (viewer page); default: the server's own address."""
    cdn_url: str | None = None
    """Base of each media's ``src`` (CDN URL); default: the server's own address."""
    api_url: str | None = None
    """Server the client commands (``imgpro upload``, ``imgpro keys create``) talk to;
    default: the server's own address."""
    api_key: str | None = None
    """API key the client commands send (``IMGPRO_API_KEY``); ``--key`` overrides it."""

    storage_url: str | None = None
    """``file:///path`` (default ``<data-dir>/originals``) or ``s3://bucket/prefix``."""
    s3_endpoint_url: str | None = None
    s3_create_bucket: bool | None = None
    """Create a missing bucket at start-up; unset means: only when an S3 endpoint is set
    (MinIO, moto, R2, ...), never on AWS itself, where buckets come from the operator."""
    database_url: str | None = None
    """Default SQLite in the data dir; ``postgresql://...`` for PostgreSQL."""
    database_timeout: float = Field(10, gt=0)
    """Seconds allowed for connecting to PostgreSQL, for waiting for a pooled connection and
    for one statement; past it the request is 503 + Retry-After (api/db/availability.py)."""

    memory_cache_mb: int = Field(256, ge=0)
    disk_cache_mb: int = Field(2048, ge=0)
    revalidate_seconds: float = Field(60, ge=0)
    shutdown_timeout: float = Field(15, ge=0)
    """On SIGTERM, how long in-flight requests may take to finish before they are cancelled."""

    max_pixels: int | None = Field(None, ge=1)
    """Unset: the transform library's own limit, ``transformer.DEFAULT_MAX_PIXELS``."""
    transform_timeout: float = Field(30.0, gt=0)
    transform_threads: int = Field(0, ge=0)
    """0 means the cores shared out over the workers (at least 1 per worker)."""
    transform_queue: int = Field(0, ge=0)
    """Transforms allowed to wait for a thread before 503; 0 means 32 per thread."""
    refine: bool = True
    """``on``: JPEG/WebP/AVIF misses are answered with a provisional fast encode and refined in the
    background; ``off``: the fast encode is served as final."""
    provisional_max_age: int = Field(300, ge=0)
    """``Cache-Control: max-age`` of a provisional rendition, in seconds."""
    refine_queue: int = Field(1000, ge=1)
    """Provisional renditions waiting for the refine lane per process; the oldest go first."""

    # The cluster's shared rendition store (transformer/renditions, README "Shared rendition
    # store"): off unless the URL is set.
    rendition_store_url: str | None = None
    """``s3://bucket/prefix``: renditions shared by every node, after memory and disk."""
    rendition_store_endpoint_url: str | None = None
    """Its S3-compatible endpoint; unset: ``IMGPRO_S3_ENDPOINT_URL`` (the originals')."""
    rendition_store_timeout: float = Field(2.0, gt=0)
    """Seconds one store request may take before it counts as failed (a miss, a dropped
    write); no retries: the store is a cache."""
    rendition_store_conditional: bool = True
    """Use S3 conditional writes (the lease; writes that never overwrite newer objects or
    bring back purged ones); off for S3-compatible services without them."""
    rendition_store_lease_seconds: float = Field(10.0, ge=0)
    """How long a node's lease on a rendition it transforms lasts, and the most other nodes
    wait for it before transforming themselves; 0: no lease."""
    rendition_store_refine_grace: float = Field(300.0, ge=0)
    """Seconds a provisional rendition read from the store is left to its maker to refine
    before this node does; 0: every node refines what it serves provisional."""
    rendition_store_breaker_failures: int = Field(3, ge=1)
    """Failed store requests in a row that open the circuit breaker (store unused)."""
    rendition_store_breaker_seconds: float = Field(10.0, gt=0)
    """How long the open breaker keeps the store unused before one probe request."""
    rendition_store_write_queue: int = Field(256, ge=1)
    """Store writes that may wait per process; beyond it new ones are dropped (counted)."""

    rate_limits: Literal["on", "off"] = "on"
    trusted_proxies: str = ""
    """Comma-separated IPs/CIDRs whose ``X-Forwarded-For`` is believed (see api/client_ip.py)."""
    cors_origins: str = "*"
    """Comma-separated origins whose browser pages may call the API (``*``: any; empty: none)."""
    import_allow_private: bool = False
    registration: Literal["open", "closed"] = "open"
    smtp_url: str | None = None
    """``smtp://user:pass@host:port`` (``?starttls=1``) or ``smtps://...``; see api/mail.py."""
    smtp_timeout: float = Field(10.0, gt=0)
    mail_from: str = DEFAULT_MAIL_FROM
    secret_key: str | None = None
    log_format: Literal["plain", "json"] = "plain"
    access_log: bool = True
    metrics_token: str | None = None
    """Bearer token that ``/metrics`` on the main port requires; unset (and no metrics address)
    means ``/metrics`` is not served at all (api/serving/metrics_access.py)."""
    metrics_address: str | None = None
    """``host:port`` of a listener of its own that serves only ``/metrics`` (then never on the
    main port); ``IMGPRO_METRICS_TOKEN`` applies there too when set."""

    # /v1 API (helper "api")
    registration_redirect_url: str | None = None
    """Where ``403 registration_closed`` sends people (action redirect); default: public URL."""
    body_idle_timeout: float = Field(30, gt=0)
    """Seconds an upload/JSON body may stall before 408 (see api/body_stream.py)."""
    body_budget_mb: int = Field(560, ge=1)
    """Bytes of upload/import bodies one process receives at once (api/intake/body_budget.py):
    eight bodies of the largest size (70 MB); more wait, then 503."""
    body_budget_wait: float = Field(10, gt=0)
    """Seconds a body waits for room in the body budget before 503 + Retry-After."""
    refused_uploads_per_hour: int = Field(20, ge=1)
    """Uploads/imports of one team per hour that may be refused for their content or for
    want of room (unsupported_format, file_too_large, a full body budget) before its next
    attempts are 429: as many as an anonymous caller may upload, so junk cannot be repeated
    at will with a free key."""
    retention_sweep_seconds: float = Field(300, gt=0)
    """How often each API process looks for expired media to delete."""
    namespace_delete_seconds: float = Field(5, gt=0)
    """How long a namespace delete marks rows (in committed chunks) before it answers with the
    exact count and leaves the rest to the sweeper (api/lifecycle/deletion.py)."""
    reconcile_seconds: float = Field(3600, gt=0)
    """One reconcile pass per this many seconds, by one API process of all that share the
    database (api/lifecycle/reconcile.py): originals without a row are removed."""
    orphan_grace_seconds: float = Field(3600, ge=0)
    """An original without a row is removed only once it is this old: far longer than an
    upload takes between storing its original and committing its row."""

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        parse_trusted_proxies(value)  # a typo must stop start-up, not trust nobody/everybody
        return value

    @field_validator("rendition_store_url")
    @classmethod
    def _check_rendition_store_url(cls, value: str | None) -> str | None:
        if value and (not value.startswith("s3://") or len(value) <= len("s3://")):
            raise ValueError("must be s3://bucket/prefix")
        return value or None

    @field_validator("metrics_address")
    @classmethod
    def _check_metrics_address(cls, value: str | None) -> str | None:
        if value:
            parse_bind_address(value)  # a typo must stop start-up, not silently expose metrics
        return value or None

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: str | None) -> str | None:
        token = (value or "").strip()
        if token and len(token) < 16:
            raise ValueError("IMGPRO_METRICS_TOKEN must be at least 16 characters")
        return token or None

    @property
    def metrics_bind(self) -> tuple[str, int] | None:
        """(host, port) of the metrics listener, if there is one."""
        return parse_bind_address(self.metrics_address) if self.metrics_address else None

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value:
            parse_smtp_url(value)  # a bad relay URL must stop start-up, not the first email
        return value or None

    @cached_property
    def threads(self) -> int:
        # One transform thread per core in total: with N workers each gets cores / N, so
        # more workers add HTTP capacity (hits) without oversubscribing the CPU on misses.
        return self.transform_threads or max(1, (os.cpu_count() or 1) // self.workers)

    @cached_property
    def queue_limit(self) -> int:
        return self.transform_queue or 32 * self.threads

    @property
    def own_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'originals').resolve()}"

    @property
    def create_bucket(self) -> bool:
        if self.s3_create_bucket is not None:
            return self.s3_create_bucket
        return bool(self.s3_endpoint_url)

    @property
    def effective_rendition_store_endpoint_url(self) -> str | None:
        return self.rendition_store_endpoint_url or self.s3_endpoint_url

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'imgpro.db').resolve()}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or self.own_url).rstrip("/")

    @property
    def effective_cdn_url(self) -> str:
        return (self.cdn_url or self.own_url).rstrip("/")
