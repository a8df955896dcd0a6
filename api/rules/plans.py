"""The reference's plan table and the pure arithmetic around it (limits, month windows).

Plans are set by an operator (``imgpro accounts set-plan``); an account's verification state
decides retention. Anonymous uploads have no plan: they are limited per IP instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

PlanName = Literal["free", "pro", "scale", "max"]
PLAN_NAMES: tuple[PlanName, ...] = get_args(PlanName)

MB = 1024 * 1024
GB = 1024 * MB
TB = 1024 * GB
DAY = 86_400

RETENTION_DAYS = 30
"""Anonymous uploads and media of unverified accounts are deleted after this many days."""
ANONYMOUS_MAX_FILE = 20 * MB
AUTHENTICATED_MAX_FILE = 70 * MB
SVG_MAX_FILE = 10 * MB
ANONYMOUS_PER_HOUR = 20
ANONYMOUS_PER_DAY = 100
KEYS_PER_EMAIL_PER_HOUR = 5
KEYS_PER_IP_PER_HOUR = 20
MIN_TTL = 3600
PENDING_KEY_SECONDS = DAY
"""A pending key (asked for an address that has an account) can be activated this long;
then its link stops working and the retention sweeper deletes it. A day is long enough to
read the email, short enough that unanswered requests do not pile up."""


@dataclass(frozen=True, slots=True)
class Plan:
    name: PlanName
    uploads_per_month: int
    storage_bytes: int
    max_file_bytes: int = AUTHENTICATED_MAX_FILE


PLANS: dict[PlanName, Plan] = {
    "free": Plan("free", 100, 5 * GB),
    "pro": Plan("pro", 1_000, 50 * GB),
    "scale": Plan("scale", 10_000, 500 * GB),
    "max": Plan("max", 100_000, 5 * TB),
}


def plan_named(name: str) -> Plan:
    """The plan for a stored name; unknown names (an old row, a typo) fall back to free."""
    return PLANS.get(name, PLANS["free"])  # type: ignore[call-overload]


def next_plan(name: str) -> Plan | None:
    """The plan an upgrade link offers: the next bigger one, or None at the top."""
    names = list(PLAN_NAMES)
    index = names.index(name) if name in names else 0
    return PLANS[names[index + 1]] if index + 1 < len(names) else None


def month_key(now: float) -> str:
    """The quota window an instant belongs to: quotas reset on the first of each month (UTC)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def month_resets_at(now: float) -> int:
    """Unix time of 00:00 UTC on the first of the next month."""
    moment = datetime.fromtimestamp(now, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def max_file_bytes(*, authenticated: bool, svg: bool) -> int:
    """The size limit for one file: SVG 10 MB for everyone, else 70 MB with a key, 20 MB without."""
    limit = AUTHENTICATED_MAX_FILE if authenticated else ANONYMOUS_MAX_FILE
    return min(limit, SVG_MAX_FILE) if svg else limit
