"""The write-behind queue: bounded, one key's jobs in order, never raising into the caller."""

from __future__ import annotations

import asyncio

from transformer.renditions.write_behind import WriteBehind


async def test_jobs_of_one_key_run_in_order_and_others_run_beside_them() -> None:
    writer = WriteBehind(capacity=10, concurrency=4)
    done: list[str] = []
    slow = asyncio.Event()

    def job(name: str, gate: asyncio.Event | None = None):  # type: ignore[no-untyped-def]
        async def run() -> None:
            if gate is not None:
                await gate.wait()
            done.append(name)
        return run

    assert writer.submit("a", job("a-provisional", slow))
    assert writer.submit("a", job("a-final"))
    assert writer.submit("b", job("b"))
    await asyncio.sleep(0.01)
    assert done == ["b"], "a's second job waits for its first"
    slow.set()
    await writer.close(5)
    assert done == ["b", "a-provisional", "a-final"]


async def test_a_full_queue_drops_and_a_failing_job_does_not_escape() -> None:
    writer = WriteBehind(capacity=2, concurrency=1)
    gate = asyncio.Event()

    async def blocked() -> None:
        await gate.wait()

    async def failing() -> None:
        raise RuntimeError("a bug in a job")

    assert writer.submit("a", blocked)
    assert writer.submit("b", failing)
    assert not writer.submit("c", blocked), "beyond capacity a job is dropped"
    gate.set()
    await writer.close(5)
    assert len(writer) == 0


async def test_close_cancels_what_outlives_the_grace() -> None:
    writer = WriteBehind(capacity=2, concurrency=1)
    forever = asyncio.Event()

    async def hangs() -> None:
        await forever.wait()

    writer.submit("a", hangs)
    await writer.close(0.05)
    assert len(writer) == 0
