"""transformer.origin.metrics.Tally: deferred increments end up exactly as direct ones would."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from transformer.origin.metrics import FLUSH_SECONDS, Tally

BUCKETS = (0.001, 0.005, 0.1, 1.0)
OBSERVATIONS = [0.0, 0.0004, 0.001, 0.0011, 0.005, 0.02, 0.1, 0.7, 1.0, 3.5, 120.0]


def metrics() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("t_requests", "requests", ["route"], registry=registry)
    histogram = Histogram("t_seconds", "seconds", ["route"], buckets=BUCKETS, registry=registry)
    return registry, counter, histogram


def exposition(registry: CollectorRegistry) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines()
                  if not line.startswith("#") and "_created" not in line)


def test_a_flushed_tally_matches_direct_increments_and_observations() -> None:
    direct, counter_d, histogram_d = metrics()
    tallied, counter_t, histogram_t = metrics()
    tally = Tally()
    for route in ("cdn", "upload"):
        for amount in OBSERVATIONS:
            counter_d.labels(route).inc()
            histogram_d.labels(route).observe(amount)
            tally.inc(counter_t.labels(route))
            tally.observe(histogram_t.labels(route), amount)
        counter_d.labels(route).inc(4096)
        tally.inc(counter_t.labels(route), 4096)
    tally.flush()  # outside an event loop each call flushes at once; flush again is harmless
    assert exposition(tallied) == exposition(direct)
    assert 't_seconds_bucket{le="0.001",route="cdn"} 3.0' in exposition(tallied)


def test_in_an_event_loop_counts_wait_for_the_flush() -> None:
    registry, counter, _ = metrics()
    tally = Tally()
    child = counter.labels("cdn")

    async def scenario() -> tuple[float, float, float]:
        for _ in range(5):
            tally.inc(child)
        before = child._value.get()
        await asyncio.sleep(FLUSH_SECONDS + 0.3)  # the armed timer hands them over
        after_timer = child._value.get()
        tally.inc(child, 2)
        tally.flush()  # a scrape or shutdown does not wait for the timer
        return before, after_timer, child._value.get()

    assert asyncio.run(scenario()) == (0.0, 5.0, 7.0)
