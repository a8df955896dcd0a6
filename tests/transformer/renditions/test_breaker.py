"""The circuit breaker's states, on a clock the test moves (no sleeping)."""

from __future__ import annotations

from transformer.renditions import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_failures_in_a_row_and_probes_once_after_the_cooldown() -> None:
    clock = Clock()
    changes: list[str] = []
    breaker = CircuitBreaker(3, 10.0, clock=clock, on_change=changes.append)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    breaker.success()  # an answer in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open" and changes == ["open"]
    assert not breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow(), "the first caller after the cooldown is the probe"
    assert breaker.state == "half_open"
    assert not breaker.allow(), "only one probe at a time"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10.1
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
    assert changes == ["open", "half_open", "open", "half_open", "closed"]


def test_a_probe_that_never_reports_is_replaced_after_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.failure()
    clock.now += 5
    assert breaker.allow()  # the probe, then nothing (its request was cancelled)
    clock.now += 4
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow() and breaker.state == "half_open"
