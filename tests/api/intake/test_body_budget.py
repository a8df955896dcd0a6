"""The body budget: grants in arrival order, bounded waits, nothing leaked on cancellation."""

from __future__ import annotations

import asyncio

import pytest

from api.intake.body_budget import BodyBudget, BodyBudgetExhausted


async def test_grants_while_room_and_waits_in_order() -> None:
    budget = BodyBudget(100, wait=5)
    await budget.take(60)
    order: list[str] = []

    async def take(name: str, nbytes: int) -> None:
        await budget.take(nbytes)
        order.append(name)

    big = asyncio.create_task(take("big", 80))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 10))  # would fit, but arrived after big
    await asyncio.sleep(0.01)
    assert order == [] and budget.reserved == 60
    budget.give(60)
    await asyncio.gather(big, small)
    assert order == ["big", "small"] and budget.reserved == 90


async def test_refuses_after_the_wait_and_lets_the_next_one_in() -> None:
    budget = BodyBudget(100, wait=0.05)
    await budget.take(90)
    with pytest.raises(BodyBudgetExhausted) as refused:
        await budget.take(50)
    assert refused.value.status == 503
    assert refused.value.headers["Retry-After"] == str(refused.value.action["seconds"])
    await budget.take(10)  # fits beside the 90
    assert budget.reserved == 100


async def test_a_body_larger_than_the_budget_runs_alone() -> None:
    budget = BodyBudget(100, wait=1)
    await budget.take(500)
    assert budget.reserved == 500
    budget.give(500)
    assert budget.reserved == 0


async def test_cancelled_waiter_leaks_nothing() -> None:
    budget = BodyBudget(100, wait=5)
    await budget.take(100)
    waiting = asyncio.create_task(budget.take(50))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    budget.give(100)
    assert budget.reserved == 0
    await budget.take(100)
    assert budget.reserved == 100
