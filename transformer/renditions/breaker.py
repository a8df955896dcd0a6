"""A circuit breaker: a dead or hanging store endpoint must not add its timeout to every miss.

closed    every request goes out; ``failures`` failures in a row open the circuit.
open      nothing goes out (lookups are misses, writes are dropped, purges fail at once and
          are retried by the sweeper) until ``cooldown`` seconds have passed.
half-open one request goes out as a probe: its success closes the circuit, its failure opens
          it again for another ``cooldown``. A probe that never reports back (cancelled) is
          replaced by a new one after ``cooldown``, so the breaker cannot stick half-open.

Recovery needs no operator and no background task: the first request after the cooldown is
the probe. Only the event loop's thread uses it, so it has no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]
STATE_VALUES: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}
"""The breaker state as a number (the metric's value): higher is worse."""


class CircuitBreaker:
    def __init__(self, failures: int, cooldown: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[State], None] | None = None) -> None:
        self.threshold = max(1, failures)
        self.cooldown = cooldown
        self._clock = clock
        self._on_change = on_change
        self._state: State = "closed"
        self._failures = 0
        self._since = 0.0  # when the circuit opened, or when the current probe went out

    @property
    def state(self) -> State:
        return self._state

    def allow(self) -> bool:
        """Whether a request may go out now (in half-open, only the probe)."""
        if self._state == "closed":
            return True
        now = self._clock()
        if now - self._since < self.cooldown:
            return False
        self._since = now  # this caller is the probe; others wait for its answer
        self._set("half_open")
        return True

    def success(self) -> None:
        """The endpoint answered (a 404 or a lost condition is an answer too)."""
        self._failures = 0
        self._set("closed")

    def failure(self) -> None:
        """A request failed: unreachable, timed out, or a server error."""
        self._failures += 1
        if self._state == "half_open" or self._failures >= self.threshold:
            self._since = self._clock()
            self._set("open")

    def _set(self, state: State) -> None:
        if state != self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
