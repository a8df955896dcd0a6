"""Prometheus metrics of the transform origin (registered in the default registry).

Label values are a small fixed set (layers, formats, sizes), never URLs or ids, so the series
count stays bounded. With several workers, prometheus-client's multiprocess mode (set up by
``imgpro serve``) aggregates them; the queue gauge sums the live processes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

_MEMORY_HIT = CACHE_REQUESTS.labels("memory", "hit")
_MEMORY_MISS = CACHE_REQUESTS.labels("memory", "miss")
_DISK_HIT = CACHE_REQUESTS.labels("disk", "hit")
_DISK_MISS = CACHE_REQUESTS.labels("disk", "miss")


def count_lookup(layer: str, disk_enabled: bool) -> None:
    """Turn the layer that answered into per-layer hit/miss counts."""
    if layer == "memory":
        _MEMORY_HIT.inc()
        return
    _MEMORY_MISS.inc()
    if not disk_enabled:
        return
    if layer == "disk":
        _DISK_HIT.inc()
    else:
        _DISK_MISS.inc()
