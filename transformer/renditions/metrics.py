"""Prometheus metrics of the shared rendition store (registered in the default registry).

Label values are small fixed sets. The store is asked on misses only (never on a memory or
disk hit), so these are plain prometheus-client calls, not the hot path's ``Tally``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LOOKUPS = Counter(
    "imgpro_rendition_store_lookups_total",
    "Rendition store lookups of a node's misses: hit (also after waiting for another node's "
    "lease), miss (produced here), error, skipped (circuit open).",
    ["result"],
)
WRITES = Counter(
    "imgpro_rendition_store_writes_total",
    "Write-behind of renditions: stored, conflict (another node's write or a purge came "
    "first), failed, dropped (write queue full), skipped (circuit open).",
    ["result"],
)
STORED_BYTES = Counter(
    "imgpro_rendition_store_stored_bytes_total",
    "Bytes of renditions written to the store.",
)
ERRORS = Counter(
    "imgpro_rendition_store_errors_total",
    "Store requests that failed (unreachable, timed out, 5xx, refused), by operation.",
    ["op"],
)
LEASES = Counter(
    "imgpro_rendition_store_leases_total",
    "Leases on a rendition: acquired (this node transforms), lost (another node holds it), "
    "released (this node's transform failed).",
    ["result"],
)
LEASE_WAITS = Counter(
    "imgpro_rendition_store_lease_waits_total",
    "Waits for another node's lease: served (its rendition arrived), gone (it gave up), "
    "timeout, failed (the store failed meanwhile); all but served transform here.",
    ["result"],
)
LEASE_WAIT_SECONDS = Histogram(
    "imgpro_rendition_store_lease_wait_seconds",
    "How long a node waited for another node's lease.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REQUEST_SECONDS = Histogram(
    "imgpro_rendition_store_request_seconds",
    "Wall time of one store request, by operation.",
    ["op"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PURGED_OBJECTS = Counter(
    "imgpro_rendition_store_purged_objects_total",
    "Store objects deleted because their image was deleted.",
)
BREAKER_STATE = Gauge(
    "imgpro_rendition_store_breaker_state",
    "The store's circuit breaker: 0 closed (in use), 1 half-open (probing), 2 open (not "
    "used); with several workers, the worst of them.",
    multiprocess_mode="livemax",
)
BREAKER_TRANSITIONS = Counter(
    "imgpro_rendition_store_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered.",
    ["state"],
)
