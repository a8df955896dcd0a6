"""What every /v1 handler needs, built once per process by ``api.serving.v1_app.build_api_app``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

import transformer
from api.db import Database
from api.intake.body_budget import BodyBudget
from api.intake.spool import SpooledBody
from api.rules.signing import Signer
from api.settings import Settings
from transformer.originals import OriginalsStore

Purge = Callable[[str, str], Awaitable[None]]
"""Drops cached renditions of (team_hash, media_id): on the CDN of this process and in the
shared rendition store (``api.lifecycle.purge``); raises StoreUnavailable to be retried."""


@dataclass
class ApiContext:
    settings: Settings
    db: Database
    store: OriginalsStore
    purge: Purge | None
    signer: Signer
    bodies: BodyBudget = field(init=False)
    sweep_now: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to run the retention sweeper at once (a namespace delete left removals to do)."""
    """Room for upload/import bodies in flight in this process (IMGPRO_BODY_BUDGET_MB)."""

    def __post_init__(self) -> None:
        self.bodies = BodyBudget(self.settings.body_budget_mb * 1024 * 1024,
                                 self.settings.body_budget_wait)

    @property
    def spool_dir(self) -> Path:
        """Where large bodies are kept while they are received: the data disk."""
        return self.settings.data_dir / "spool"

    def new_body(self, *, max_bytes: int | None = None) -> SpooledBody:
        """An empty body that reserves its room from this process's body budget."""
        return SpooledBody(self.spool_dir, self.bodies, max_bytes=max_bytes)

    @property
    def max_pixels(self) -> int:
        """Pixels an upload may declare: ``IMGPRO_MAX_PIXELS`` or the library's default."""
        return self.settings.max_pixels or transformer.DEFAULT_MAX_PIXELS

    @staticmethod
    def now() -> int:
        return int(time.time())

    def media_url(self, media_id: str) -> str:
        return f"{self.settings.effective_public_url}/{media_id}"

    def media_src(self, team_hash: str, media_id: str, extension: str) -> str:
        return f"{self.settings.effective_cdn_url}/{team_hash}/{media_id}.{extension}"


def context_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx
