from __future__ import annotations

import threading
import time

import pytest

from transformer import TransformTimeout
from transformer._deadline import Deadline
from transformer._memory_budget import MemoryBudget


def test_reservations_within_capacity_run_together() -> None:
    budget = MemoryBudget(100)
    with budget.reserve(60, Deadline(1)), budget.reserve(40, Deadline(1)):
        assert budget.reserved == 100
    assert budget.reserved == 0


def test_a_reservation_waits_for_room() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with budget.reserve(80, Deadline(5)):
            first_holds.set()
            time.sleep(0.1)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(5)
    with budget.reserve(80, Deadline(5)):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_oversized_reservation_runs_alone() -> None:
    budget = MemoryBudget(100)
    with budget.reserve(500, Deadline(1)):
        assert budget.reserved == 500
        with pytest.raises(TransformTimeout), budget.reserve(1, Deadline(0.05)):
            pass
    assert budget.reserved == 0


def test_released_on_error() -> None:
    budget = MemoryBudget(100)
    with pytest.raises(RuntimeError), budget.reserve(70, Deadline(1)):
        raise RuntimeError("decode failed")
    assert budget.reserved == 0
