"""A batch lane hands its handler batches, and acknowledges a record only once it was
handled or dead-lettered (stream/batch_lane.py). Faust's own app, flow control and
consumer objects, none started: the lane's logic needs no broker."""

from __future__ import annotations

import asyncio
import time

import faust
import pytest
from faust.types import Message

from citywatch.stream.batch_lane import BatchLane

TOPIC = "citywatch.alerts"


def record(offset: int) -> Message:
    return Message(TOPIC, 0, offset, time.time(), 0, [], b"k", b"v%d" % offset, None)


def make_lane(handler, on_error, *, max_records: int = 100, within_s: float = 0.05) -> BatchLane:  # type: ignore[no-untyped-def]
    app = faust.App("lane-test", broker="kafka://localhost:1")
    app.flow_control.resume()
    return BatchLane(
        app, app.topic(TOPIC), handler, on_error,
        max_records=max_records, within_s=within_s, buffer=1000,
    )  # fmt: skip


async def nothing(_: object, *__: object) -> None:
    return None


async def test_a_batch_is_what_is_buffered_up_to_the_limit() -> None:
    lane = make_lane(nothing, nothing, max_records=3)
    for offset in range(5):
        lane.queue.put_nowait(record(offset))
    assert [m.offset for m in await lane.take()] == [0, 1, 2]
    assert [m.offset for m in await lane.take()] == [3, 4]


async def test_a_batch_waits_briefly_for_records_that_follow_the_first() -> None:
    lane = make_lane(nothing, nothing, within_s=0.3)
    lane.queue.put_nowait(record(0))

    async def later() -> None:
        await asyncio.sleep(0.05)
        lane.queue.put_nowait(record(1))

    follower = asyncio.create_task(later())
    started = time.perf_counter()
    batch = await lane.take()
    await follower
    assert [m.offset for m in batch] == [0, 1]
    assert time.perf_counter() - started >= 0.25  # it waited out within_s for more


async def run_one_batch(lane: BatchLane, records: list[Message]) -> None:
    for m in records:
        lane.queue.put_nowait(m)
    runner = asyncio.create_task(lane.run())
    deadline = time.monotonic() + 5
    while not any(m.acked for m in records) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the rest of the batch's acks
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_records_are_acknowledged_after_their_handler_returned() -> None:
    handled: list[list[int]] = []

    async def handler(batch: list[Message]) -> None:
        assert not any(m.acked for m in batch)  # not before
        handled.append([m.offset for m in batch])

    records = [record(n) for n in range(4)]
    await run_one_batch(make_lane(handler, nothing), records)
    assert handled == [[0, 1, 2, 3]]
    assert all(m.acked for m in records)


async def test_a_failing_handler_dead_letters_its_batch_and_the_lane_goes_on() -> None:
    dead: list[tuple[int, str]] = []

    async def handler(batch: list[Message]) -> None:
        raise RuntimeError("a bug")

    async def on_error(message: Message, exc: Exception) -> None:
        dead.append((message.offset, str(exc)))

    records = [record(n) for n in range(3)]
    await run_one_batch(make_lane(handler, on_error), records)
    assert dead == [(0, "a bug"), (1, "a bug"), (2, "a bug")]
    assert all(m.acked for m in records)


async def test_a_record_that_could_not_be_dead_lettered_is_not_acknowledged() -> None:
    async def handler(batch: list[Message]) -> None:
        raise RuntimeError("a bug")

    async def on_error(message: Message, exc: Exception) -> None:
        if message.offset == 1:
            raise ConnectionError("Kafka is down")

    records = [record(n) for n in range(3)]
    await run_one_batch(make_lane(handler, on_error), records)
    assert [m.acked for m in records] == [True, False, True]


async def test_a_two_step_handler_prepares_the_next_batch_while_one_is_handled() -> None:
    """The next batch is validated during the handling of the one before; batches are
    handled in order, one at a time, each acknowledged when its own handling returned."""
    release = asyncio.Event()
    steps: list[str] = []

    class Staged:
        async def prepare(self, records: list[Message]) -> list[Message]:
            steps.append(f"prepare {records[0].offset}")
            return records

        async def handle_prepared(self, records: list[Message]) -> None:
            steps.append(f"handle {records[0].offset}")
            if records[0].offset == 0:
                await release.wait()  # the first batch waits on its "commit"
            assert not any(m.acked for m in records)

        async def __call__(self, records: list[Message]) -> None:
            await self.handle_prepared(await self.prepare(records))

    lane = make_lane(Staged(), nothing, max_records=2, within_s=0.01)
    first, second = [record(0), record(1)], [record(2), record(3)]
    for m in first + second:
        lane.queue.put_nowait(m)
    runner = asyncio.create_task(lane.run())
    await asyncio.sleep(0.1)
    assert steps[0] == "prepare 0" and sorted(steps[1:]) == ["handle 0", "prepare 2"]
    assert not any(m.acked for m in first + second)
    release.set()
    await asyncio.sleep(0.1)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert steps[3:] == ["handle 2"]
    assert all(m.acked for m in first + second)
