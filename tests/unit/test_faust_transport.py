"""The stream worker's delivery of records to its agents without a task per record.

``_deliver`` runs a delivery coroutine's first step in place and, only when that step has
to wait, finishes it with ``_finish`` in a task. These tests pin that ``_finish`` is to a
half-run coroutine what an asyncio task is to a fresh one: results, errors, bare yields
and cancellation all reach the coroutine as they would have.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mode import Service

from citywatch.stream.faust_transport import _Consumer, _finish


def first_step(coro: Any) -> Any:
    """Run ``coro`` to its first suspension, as the fetch loop does; what it waits on."""
    try:
        return coro.send(None)
    except StopIteration:
        pytest.fail("the coroutine finished without waiting")


def test_a_coroutine_that_never_waits_finishes_in_its_first_step() -> None:
    """The usual delivery: room in the buffer, no task needed."""

    async def deliver() -> str:
        return "delivered"

    with pytest.raises(StopIteration) as done:
        deliver().send(None)
    assert done.value.value == "delivered"


async def test_a_waiting_coroutine_gets_the_result_it_waited_for() -> None:
    loop = asyncio.get_running_loop()
    room: asyncio.Future[int] = loop.create_future()
    steps: list[str] = []

    async def deliver() -> str:
        steps.append("blocked")
        slot = await room
        await asyncio.sleep(0)  # a bare yield on the way
        steps.append(f"slot {slot}")
        return "delivered"

    coro = deliver()
    task = asyncio.ensure_future(_finish(coro, first_step(coro)))
    await asyncio.sleep(0)
    assert not task.done() and steps == ["blocked"]
    room.set_result(3)
    assert await task == "delivered"
    assert steps == ["blocked", "slot 3"]


async def test_an_error_of_the_awaited_future_is_raised_inside_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    room: asyncio.Future[int] = loop.create_future()

    async def deliver() -> str:
        try:
            await room
        except ConnectionError as exc:
            return f"handled {exc}"
        return "not reached"

    coro = deliver()
    task = asyncio.ensure_future(_finish(coro, first_step(coro)))
    room.set_exception(ConnectionError("lost"))
    assert await task == "handled lost"


async def test_cancelling_the_finish_cancels_the_wait_and_lets_the_coroutine_clean_up() -> None:
    """A rebalance abandons a blocked delivery: what it waited on is cancelled and the
    coroutine's cleanup (releasing locks) runs, exactly as for a cancelled task."""
    loop = asyncio.get_running_loop()
    room: asyncio.Future[int] = loop.create_future()
    cleaned: list[str] = []

    async def deliver() -> None:
        try:
            await room
        finally:
            cleaned.append("released")

    coro = deliver()
    task = asyncio.ensure_future(_finish(coro, first_step(coro)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert room.cancelled()
    assert cleaned == ["released"]


class Fetcher(Service):
    """Just what ``_Consumer._deliver`` uses of Faust's consumer: the callback that hands a
    record to the agents' buffer, the flow-suspended event, and mode's ``wait_first``."""

    _deliver = _Consumer._deliver

    def __init__(self, buffer: asyncio.Queue[str]) -> None:
        super().__init__()
        self.buffer = buffer
        self.suspend_flow = asyncio.Event()

    async def callback(self, record: str) -> None:
        await self.buffer.put(record)


async def test_a_record_waits_for_room_in_a_full_buffer_and_then_is_delivered() -> None:
    buffer: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
    fetcher = Fetcher(buffer)
    await fetcher._deliver("r1")  # room: delivered in place
    delivery = asyncio.ensure_future(fetcher._deliver("r2"))
    await asyncio.sleep(0.01)
    assert not delivery.done()  # full: waits, as Faust's fetcher does
    assert buffer.get_nowait() == "r1"  # the agent takes one
    await asyncio.wait_for(delivery, 1)
    assert buffer.get_nowait() == "r2"


async def test_a_rebalance_abandons_a_delivery_stuck_on_a_full_buffer() -> None:
    """Faust stops the flow (``suspend_flow``) before it revokes partitions and clears the
    buffers; a record still waiting for room must not slip in afterwards."""
    buffer: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
    fetcher = Fetcher(buffer)
    await fetcher._deliver("r1")
    delivery = asyncio.ensure_future(fetcher._deliver("r2"))
    await asyncio.sleep(0.01)
    fetcher.suspend_flow.set()
    await asyncio.wait_for(delivery, 1)  # returns: abandoned
    assert buffer.get_nowait() == "r1"  # the buffer is cleared or drained …
    await asyncio.sleep(0.01)
    assert buffer.empty()  # … and the abandoned record never arrives
