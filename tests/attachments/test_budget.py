"""The decoding memory budget (chatd/attachments/budget.py): a FIFO semaphore weighted by
pixels, never over its capacity, with no waiter lost to a cancellation."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.attachments.budget import PixelBudget

CAPACITY = 100


async def _play(weights: list[int], release_order: list[int], cancelled: set[int]) -> list[int]:
    """Every weight asks in turn; the holders release in ``release_order`` (indices into
    the granted ones, modulo); the waiters in ``cancelled`` give up.  Returns the grant order,
    checking the invariants after every step."""
    budget = PixelBudget(CAPACITY)
    granted: list[int] = []
    releases = {i: asyncio.Event() for i in range(len(weights))}

    async def holder(i: int) -> None:
        async with budget.hold(weights[i]):
            granted.append(i)
            assert budget.in_use <= CAPACITY
            await releases[i].wait()

    tasks = {i: asyncio.create_task(holder(i)) for i in range(len(weights))}
    await asyncio.sleep(0)  # every task has asked (or been granted), in order
    gave_up = [i for i in sorted(cancelled) if i not in granted]
    for i in gave_up:
        tasks[i].cancel()
    await asyncio.gather(*(tasks[i] for i in gave_up), return_exceptions=True)
    alive = [i for i in range(len(weights)) if i not in gave_up]
    step = 0
    while any(not tasks[i].done() for i in alive):
        holding = [i for i in granted if not tasks[i].done() and not releases[i].is_set()]
        assert holding, "a waiter was left behind with nothing held"
        assert budget.in_use == sum(weights[i] for i in holding)
        victim = holding[release_order[step % len(release_order)] % len(holding)]
        step += 1
        releases[victim].set()
        await tasks[victim]
        await asyncio.sleep(0)  # let the newly granted run their first step
    assert budget.in_use == 0 and budget.waiting == 0
    return granted


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, CAPACITY), min_size=1, max_size=25),
    st.lists(st.integers(0, 100), min_size=1, max_size=25),
    st.sets(st.integers(0, 24), max_size=6),
)
def test_the_budget_is_never_exceeded_and_grants_in_order(
    weights: list[int], release_order: list[int], cancelled: set[int]
) -> None:
    cancelled &= set(range(len(weights)))
    granted = asyncio.run(asyncio.wait_for(_play(weights, release_order, cancelled), 30))
    # Everyone who did not give up was served, once; a waiter may be granted as it gives up.
    assert len(granted) == len(set(granted))
    assert set(range(len(weights))) - cancelled <= set(granted)
    assert granted == sorted(granted)  # first come, first served: nobody overtakes


async def test_a_large_request_is_not_overtaken_by_small_ones() -> None:
    budget = PixelBudget(10)
    await budget.acquire(6)
    large = asyncio.create_task(budget.acquire(8))
    await asyncio.sleep(0)
    small = asyncio.create_task(budget.acquire(1))  # would fit now, but the large one is first
    await asyncio.sleep(0)
    assert not large.done() and not small.done()
    budget.release(6)
    await asyncio.wait_for(asyncio.gather(large, small), 5)
    assert budget.in_use == 9


async def test_a_request_larger_than_the_budget_is_refused_at_once() -> None:
    budget = PixelBudget(10)
    assert not budget.fits(11)
    with pytest.raises(ValueError):
        await budget.acquire(11)
    assert budget.in_use == 0
