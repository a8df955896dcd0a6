"""Prometheus metrics of the transform origin (registered in the default registry).

Label values are a small fixed set (layers, formats, sizes), never URLs or ids, so the series
count stays bounded. With several workers, prometheus-client's multiprocess mode (set up by
``imgpro serve``) aggregates them; the queue gauge sums the live processes.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

FLUSH_SECONDS = 1.0
"""How long hot-path increments may wait in a ``Tally`` before prometheus-client sees them."""


class Tally:
    """Counter increments and histogram observations summed in plain Python, handed to
    prometheus-client at most ``FLUSH_SECONDS`` later (and before every scrape, and at exit).

    Why: with several workers, prometheus-client's multiprocess mode makes each increment a
    lock and a write into a memory-mapped file, and a cache hit made five of them; they were a
    fifth of what the protocol-level hit path costs (``python bench/hit_cost.py --through
    protocol``). Here an increment is a dict update. Used from the event loop's thread only.
    Histogram observations go into the same buckets ``Histogram.observe`` would pick (through
    the child's ``_sum``/``_buckets`` values, checked against ``observe`` in the tests).
    """

    def __init__(self) -> None:
        self._counts: dict[Any, float] = {}
        self._sums: dict[Any, float] = {}
        self._buckets: dict[Any, list[int]] = {}
        self._armed = False

    def inc(self, child: Any, amount: float = 1.0) -> None:
        self._counts[child] = self._counts.get(child, 0.0) + amount
        self._arm()

    def observe(self, child: Any, amount: float) -> None:
        buckets = self._buckets.get(child)
        if buckets is None:
            buckets = self._buckets[child] = [0] * len(child._upper_bounds)
        buckets[bisect_left(child._upper_bounds, amount)] += 1
        self._sums[child] = self._sums.get(child, 0.0) + amount
        self._arm()

    def flush(self) -> None:
        self._armed = False
        counts, self._counts = self._counts, {}
        sums, self._sums = self._sums, {}
        observed, self._buckets = self._buckets, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, buckets in observed.items():
            child._sum.inc(sums[child])
            for index, count in enumerate(buckets):
                if count:
                    child._buckets[index].inc(count)

    def _arm(self) -> None:
        if self._armed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here (a script, a thread): nothing to defer to
            self.flush()
            return
        self._armed = True
        loop.call_later(FLUSH_SECONDS, self.flush)


TALLY = Tally()
"""The process's one tally; ``/metrics`` and worker shutdown flush it."""

CACHE_REQUESTS = Counter(
    "imgpro_cache_requests_total",
    "Rendition cache lookups per layer and result.",
    ["layer", "result"],
)
TRANSFORM_SECONDS = Histogram(
    "imgpro_transform_seconds",
    "Wall time of one transform (decode + resize + encode) by format and size.",
    ["format", "size"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRANSFORM_QUEUE = Gauge(
    "imgpro_transform_queue_depth",
    "Transforms admitted (running or waiting for a thread).",
    multiprocess_mode="livesum",
)
TRANSFORM_REFUSALS = Counter(
    "imgpro_transform_refusals_total",
    "Transforms not done, by reason (overloaded, bad image, timeout, store unavailable).",
    ["reason"],
)

REFINE_QUEUE = Gauge(
    "imgpro_refine_queue_depth",
    "Provisional renditions waiting for the refine lane.",
    multiprocess_mode="livesum",
)
REFINE_DROPPED = Counter(
    "imgpro_refine_dropped_total",
    "Keys dropped from a full refine queue (oldest first); offered again on their next hit.",
)
REFINE_DONE = Counter(
    "imgpro_refine_total",
    "Refine jobs by result: refined (final swapped in), from_store (another node's final "
    "picked up from the shared rendition store), gone (image deleted or entry evicted), "
    "failed.",
    ["result"],
)
REFINE_SECONDS = Histogram(
    "imgpro_refine_seconds",
    "Wall time of one final encode in the refine lane (decode + resize + encode).",
    ["format", "size"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

_MEMORY_HIT = CACHE_REQUESTS.labels("memory", "hit")
_MEMORY_MISS = CACHE_REQUESTS.labels("memory", "miss")
_DISK_HIT = CACHE_REQUESTS.labels("disk", "hit")
_DISK_MISS = CACHE_REQUESTS.labels("disk", "miss")
_STORE_HIT = CACHE_REQUESTS.labels("store", "hit")
_STORE_MISS = CACHE_REQUESTS.labels("store", "miss")


def count_lookup(layer: str, disk_enabled: bool, store_enabled: bool = False) -> None:
    """Turn the layer that answered into per-layer hit/miss counts."""
    if layer == "memory":
        TALLY.inc(_MEMORY_HIT)
        return
    TALLY.inc(_MEMORY_MISS)
    if disk_enabled:
        TALLY.inc(_DISK_HIT if layer == "disk" else _DISK_MISS)
    if store_enabled and layer != "disk":
        TALLY.inc(_STORE_HIT if layer == "store" else _STORE_MISS)
