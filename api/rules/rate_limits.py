"""Per-IP and per-email rate limits as fixed windows counted in the database.

A window is (name, subject, start); its counter lives in ``rate_counters`` and is bumped by
one conditional upsert, so limits hold across processes and nodes sharing the database.
Several windows checked together (20/hour AND 100/day) are bumped in one transaction: if any
is full, the whole transaction rolls back and nothing is counted.

``IMGPRO_RATE_LIMITS=off`` turns all of this off (load tests, benchmarks); quotas still apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from api.db import Database
from api.db.counters import hit_window, window_count
from api.errors import RateLimited
from api.rules.plans import (
    ANONYMOUS_PER_DAY,
    ANONYMOUS_PER_HOUR,
    DAY,
    KEYS_PER_EMAIL_PER_HOUR,
    KEYS_PER_IP_PER_HOUR,
)


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    limit: int
    seconds: int

    def start(self, now: int) -> int:
        return now - now % self.seconds

    def reset(self, now: int) -> int:
        return self.start(now) + self.seconds

    def key(self, subject: str, now: int) -> str:
        return f"{self.name}:{subject}:{self.start(now)}"


ANONYMOUS_UPLOADS_HOURLY = Window("anon-upload-hour", ANONYMOUS_PER_HOUR, 3600)
ANONYMOUS_UPLOADS_DAILY = Window("anon-upload-day", ANONYMOUS_PER_DAY, DAY)
KEYS_PER_EMAIL = Window("keys-email-hour", KEYS_PER_EMAIL_PER_HOUR, 3600)
KEYS_PER_IP = Window("keys-ip-hour", KEYS_PER_IP_PER_HOUR, 3600)


def refused_uploads_window(limit: int) -> Window:
    """Refused uploads/imports of one team per hour (``IMGPRO_REFUSED_UPLOADS_PER_HOUR``)."""
    return Window("refused-upload-hour", limit, 3600)


@dataclass(frozen=True, slots=True)
class WindowState:
    window: Window
    count: int
    reset: int

    @property
    def remaining(self) -> int:
        return max(0, self.window.limit - self.count)


async def hit(db: Database, checks: list[tuple[Window, str]], now: int,
              headers_for: Callable[[list[WindowState]], dict[str, str]] | None = None,
              ) -> list[WindowState]:
    """Count one hit in every window, or none at all: raises RateLimited if any is full."""
    states: list[WindowState] = []
    try:
        async with db.write() as conn:
            for window, subject in checks:
                count = await hit_window(conn, window.key(subject, now), window.limit,
                                         window.reset(now))
                if count is None:
                    raise _Rollback(window)
                states.append(WindowState(window, count, window.reset(now)))
        return states
    except _Rollback as rollback:
        denied: Window = rollback.args[0]
    # The transaction above rolled back (nothing counted): report what stands now.
    async with db.read() as conn:
        current = [WindowState(w, await window_count(conn, w.key(s, now)), w.reset(now))
                   for w, s in checks]
    raise RateLimited(
        f"Too many requests: the limit is {denied.limit} per {_per(denied.seconds)}. "
        f"Try again in {denied.reset(now) - now} seconds.",
        retry_after=denied.reset(now) - now,
        headers=headers_for(current) if headers_for else None,
    )


def _per(seconds: int) -> str:
    return {3600: "hour", DAY: "day"}.get(seconds, f"{seconds} seconds")


class _Rollback(Exception):
    """Raised inside a write transaction to undo it."""


def anonymous_headers(states: list[WindowState]) -> dict[str, str]:
    """The reference's X-RateLimit-* headers of anonymous upload responses."""
    by_name = {s.window.name: s for s in states}
    headers: dict[str, str] = {}
    hourly = by_name.get(ANONYMOUS_UPLOADS_HOURLY.name)
    daily = by_name.get(ANONYMOUS_UPLOADS_DAILY.name)
    if hourly is not None:
        headers["X-RateLimit-Limit"] = str(hourly.window.limit)
        headers["X-RateLimit-Remaining"] = str(hourly.remaining)
        headers["X-RateLimit-Reset"] = str(hourly.reset)
    if daily is not None:
        headers["X-RateLimit-Limit-Daily"] = str(daily.window.limit)
        headers["X-RateLimit-Remaining-Daily"] = str(daily.remaining)
    return headers
